#include "image/shown_name.h"

namespace strata::image {

namespace {

// Length of the UTF-8 sequence starting at s[i] that encodes a printable character (not a C1
// control, U+0080..U+009F); 0 when there is none.
size_t printable_utf8(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
  auto c1 = static_cast<unsigned char>(s[i + 1]);
  if (c == 0xC2 && c1 < 0xA0) return 0;   // C1 controls
  if (c == 0xE0 && c1 < 0xA0) return 0;   // overlong
  if (c == 0xED && c1 >= 0xA0) return 0;  // surrogates
  if (c == 0xF0 && c1 < 0x90) return 0;   // overlong
  if (c == 0xF4 && c1 >= 0x90) return 0;  // past U+10FFFF
  return len;
}

}  // namespace

std::string shown_name(std::string_view name) {
  static const char* kHex = "0123456789abcdef";
  std::string out = "\"";
  size_t i = 0;
  while (i < name.size() && i < kShownNameBytes) {
    auto c = static_cast<unsigned char>(name[i]);
    if (c >= 0x20 && c < 0x7F) {
      if (c == '"' || c == '\\') out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (size_t n = c >= 0x80 ? printable_utf8(name, i) : 0; n > 0 && i + n <= kShownNameBytes) {
      out.append(name.substr(i, n));
      i += n;
    } else if (n > 0) {
      break;  // a character cut by the limit
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
      ++i;
    }
  }
  out += '"';
  if (i < name.size()) out += "... (" + std::to_string(name.size()) + " bytes)";
  return out;
}

}  // namespace strata::image
