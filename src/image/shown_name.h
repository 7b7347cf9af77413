// How a string from an image, a registry or an archive (an entry name, a link target, an xattr
// name, a media type) appears in an error or a log line. Such strings are untrusted: a pax
// header can carry a name of megabytes, and a name can hold escape sequences meant for the
// terminal that shows the error.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace strata::image {

inline constexpr size_t kShownNameBytes = 200;

// Quoted; '"' and '\' escaped with a backslash, control characters and bytes that are not
// printable UTF-8 as \xNN; cut after kShownNameBytes of the input with the full length said:
// "nnnn..."... (5000 bytes). A multi-byte character is never cut in half.
std::string shown_name(std::string_view name);

}  // namespace strata::image
