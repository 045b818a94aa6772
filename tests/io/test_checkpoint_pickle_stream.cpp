// unpickle() with `consumed`: streams of several pickles back to back, as in
// legacy torch.save files (used by the checkpoint reader).
#include <gtest/gtest.h>

#include "qface/core/error.h"
#include "qface/io/pickle.h"

namespace qi = qface::io;

TEST(CheckpointPickleStream, ReportsBytesConsumedPerPickle) {
  const std::string a = qi::pickle_protocol2(qi::PyValue::integer(1001));
  const std::string b = qi::pickle_protocol2(qi::PyValue::list({qi::PyValue::str("0"), qi::PyValue::str("1")}));
  const std::string stream = a + b + "raw tensor bytes";
  std::size_t used = 0;
  qi::PyRef first = qi::unpickle(stream, "stream", {}, &used);
  EXPECT_EQ(used, a.size());
  EXPECT_EQ(first->i, 1001);
  std::size_t used2 = 0;
  qi::PyRef second = qi::unpickle(std::string_view(stream).substr(used), "stream", {}, &used2);
  EXPECT_EQ(used2, b.size());
  ASSERT_EQ(second->items.size(), 2u);
  EXPECT_EQ(second->items[1]->s, "1");
  // A stream cut inside the second pickle is an error, not a crash.
  EXPECT_THROW(qi::unpickle(std::string_view(stream).substr(used, b.size() - 2), "stream", {}, &used2), qface::Error);
}
