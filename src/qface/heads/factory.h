// Builds a head by name from a HeadConfig (head_config.h); options left unset
// take the paper defaults of the chosen head.
#pragma once

#include <string>
#include <vector>

#include "qface/heads/head.h"
#include "qface/heads/head_config.h"

namespace qface::heads {

const std::vector<std::string>& head_names();

// Throws qface::Error for an unknown name or an option the head does not take.
Head make_head(const HeadConfig& config);

}  // namespace qface::heads
