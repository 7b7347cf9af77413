// Reference grammar (docker/distribution reference/reference.go):
//   reference := name [ ":" tag ] [ "@" digest ]
//   name      := [domain "/"] path-component ["/" path-component]*
//   domain    := host [":" port]; host := domain-component ["." domain-component]* | "[" ipv6 "]"
//   path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//   tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
// Normalization follows docker's ParseNormalizedNamed, with one difference: a first component
// is a domain only when it has a '.' or ':' or is "localhost" (docker also takes an uppercase
// first component as a domain, which turns the typo "Foo/bar" into a registry host).
#include "image/reference.h"

#include <algorithm>

#include "base/digest.h"

namespace strata::image {
namespace {

constexpr size_t kMaxNameLength = 255;
constexpr size_t kMaxTagLength = 128;

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alnum(char c) { return is_lower_alnum(c) || (c >= 'A' && c <= 'Z'); }
bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool valid_path_component(std::string_view c) {
  size_t i = 0;
  while (true) {
    // A run of alphanumerics...
    size_t start = i;
    while (i < c.size() && is_lower_alnum(c[i])) ++i;
    if (i == start) return false;
    if (i == c.size()) return true;
    // ...then exactly one separator: ".", "_", "__" or any number of '-'.
    size_t sep = i;
    while (i < c.size() && !is_lower_alnum(c[i])) ++i;
    std::string_view s = c.substr(sep, i - sep);
    bool dashes = std::all_of(s.begin(), s.end(), [](char ch) { return ch == '-'; });
    if (!(s == "." || s == "_" || s == "__" || dashes)) return false;
  }
}

bool valid_domain_component(std::string_view c) {
  if (c.empty() || !is_alnum(c.front()) || !is_alnum(c.back())) return false;
  return std::all_of(c.begin(), c.end(), [](char ch) { return is_alnum(ch) || ch == '-'; });
}

bool valid_domain(std::string_view d) {
  std::string_view host = d;
  std::string_view port;
  if (!d.empty() && d.front() == '[') {
    size_t close = d.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    std::string_view v6 = d.substr(1, close - 1);
    if (!std::all_of(v6.begin(), v6.end(),
                     [](char ch) { return is_hex(ch) || (ch >= 'A' && ch <= 'F') || ch == ':'; }))
      return false;
    std::string_view rest = d.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
    host = {};
  } else if (size_t colon = d.find(':'); colon != std::string_view::npos) {
    host = d.substr(0, colon);
    port = d.substr(colon + 1);
    if (port.empty()) return false;
  }
  if (!std::all_of(port.begin(), port.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) return false;
  if (d.front() == '[') return true;
  size_t pos = 0;
  while (true) {
    size_t dot = host.find('.', pos);
    if (!valid_domain_component(host.substr(pos, dot - pos))) return false;
    if (dot == std::string_view::npos) return true;
    pos = dot + 1;
  }
}

bool valid_tag(std::string_view t) {
  if (t.empty() || t.size() > kMaxTagLength) return false;
  if (!(is_alnum(t.front()) || t.front() == '_')) return false;
  return std::all_of(t.begin(), t.end(),
                     [](char c) { return is_alnum(c) || c == '_' || c == '.' || c == '-'; });
}

}  // namespace

std::string Reference::repository() const { return domain + "/" + path; }

std::string Reference::str() const {
  std::string s = repository();
  if (!tag.empty()) s += ":" + tag;
  if (!digest.empty()) s += "@" + digest;
  return s;
}

std::string Reference::familiar() const {
  std::string name = repository();
  if (domain == kDockerDomain) {
    name = path;
    constexpr std::string_view kLibrary = "library/";
    if (name.starts_with(kLibrary) && name.find('/', kLibrary.size()) == std::string::npos)
      name = name.substr(kLibrary.size());
  }
  if (!tag.empty()) name += ":" + tag;
  if (!digest.empty()) name += "@" + digest;
  return name;
}

Result<Reference> parse_reference(std::string_view s) {
  auto fail = [&](std::string_view what) {
    return Error("invalid image reference \"" + std::string(s) + "\": " + std::string(what));
  };
  if (s.empty()) return fail("empty");
  if (s.size() == 64 && std::all_of(s.begin(), s.end(), is_hex))
    return fail("a 64-digit hex string is an image ID, not a reference");

  Reference ref;
  std::string_view name = s;
  if (size_t at = s.find('@'); at != std::string_view::npos) {
    name = s.substr(0, at);
    std::string_view digest = s.substr(at + 1);
    if (Status st = validate_digest(digest); !st.ok()) return fail(st.error().message());
    ref.digest = std::string(digest);
  }
  size_t slash = name.rfind('/');
  size_t colon = name.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    std::string_view tag = name.substr(colon + 1);
    if (!valid_tag(tag)) return fail("invalid tag \"" + std::string(tag) + "\"");
    ref.tag = std::string(tag);
    name = name.substr(0, colon);
  }
  if (name.empty()) return fail("empty repository name");

  std::string_view path = name;
  ref.domain = std::string(kDockerDomain);
  if (size_t first = name.find('/'); first != std::string_view::npos) {
    std::string_view head = name.substr(0, first);
    if (head.find_first_of(".:") != std::string_view::npos || head == "localhost") {
      if (!valid_domain(head)) return fail("invalid domain \"" + std::string(head) + "\"");
      ref.domain = head == "index.docker.io" ? std::string(kDockerDomain) : std::string(head);
      path = name.substr(first + 1);
    }
  }
  if (std::any_of(path.begin(), path.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
    return fail("repository name must be lowercase");
  size_t pos = 0;
  while (true) {
    size_t next = path.find('/', pos);
    std::string_view component = path.substr(pos, next - pos);
    if (component.empty()) return fail("empty path component");
    if (!valid_path_component(component))
      return fail("invalid path component \"" + std::string(component) +
                  "\" (want [a-z0-9] separated by '.', '_', '__' or '-')");
    if (next == std::string_view::npos) break;
    pos = next + 1;
  }
  ref.path = std::string(path);
  if (ref.domain == kDockerDomain && ref.path.find('/') == std::string::npos)
    ref.path = "library/" + ref.path;
  if (ref.repository().size() > kMaxNameLength)
    return fail("repository name longer than " + std::to_string(kMaxNameLength) + " characters");
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

}  // namespace strata::image
