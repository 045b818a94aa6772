// core/text.h: the UTF-8 validator, on hand-made byte sequences.
#include <gtest/gtest.h>

#include <string>

#include "qface/core/text.h"

TEST(Text, Utf8ValidatorAcceptsWellFormedAndRejectsTheRest) {
  using qface::is_utf8;
  EXPECT_TRUE(is_utf8(""));
  EXPECT_TRUE(is_utf8("plain ascii\t\x01"));
  EXPECT_TRUE(is_utf8("caf\xc3\xa9"));              // U+00E9
  EXPECT_TRUE(is_utf8("\xe2\x82\xac"));             // U+20AC
  EXPECT_TRUE(is_utf8("\xf0\x9f\x98\x80"));         // U+1F600
  EXPECT_TRUE(is_utf8("\xf4\x8f\xbf\xbf"));         // U+10FFFF, the last code point
  EXPECT_FALSE(is_utf8("\xa6"));                    // a lone continuation byte
  EXPECT_FALSE(is_utf8("caf\xc3"));                 // cut sequence
  EXPECT_FALSE(is_utf8("\xc3\x28"));                // second byte not a continuation
  EXPECT_FALSE(is_utf8("\xc0\xaf"));                // overlong '/'
  EXPECT_FALSE(is_utf8("\xe0\x80\xaf"));            // overlong '/', 3 bytes
  EXPECT_FALSE(is_utf8("\xed\xa0\x80"));            // U+D800, a surrogate
  EXPECT_FALSE(is_utf8("\xf4\x90\x80\x80"));        // U+110000, past the end
  EXPECT_FALSE(is_utf8("\xf8\x88\x80\x80\x80"));    // 5-byte form
  EXPECT_FALSE(is_utf8(std::string("\xff\xfe", 2)));
}
