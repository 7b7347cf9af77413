// Reading untrusted JSON into typed values (STYLE.md section 7), for the config.json parser.
// Internal to src/oci: only .cc files include it. Every value is read through a path
// ("linux.resources.memory.limit") so that each error names its field; an ObjectReader
// remembers which keys it was asked about so that finish() can refuse the rest by name.
// null is treated as absent, as Go clients (runc, podman) do when they write config.json.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace strata::oci::json_reader {

using Json = nlohmann::json;

// Parses text; `what` names the document in errors ("parse config.json: ..."). Duplicate keys
// in one object and nesting deeper than any config.json needs are refused: the first because
// two parsers of the same file (podman's and ours) could otherwise read different values.
Result<Json> parse(std::string_view text, std::string_view what);

// "\"abc\"", "-1", "an object", "an array", "null": how a value is shown in an error.
std::string describe(const Json& v);
std::string field_path(std::string_view base, std::string_view key);  // base.key (key alone at top)
std::string element_path(std::string_view base, size_t i);            // base[i]

// Conversions of one value; on a type or range error the message starts with `path`.
Status get(const Json& v, const std::string& path, std::string& out);
Status get(const Json& v, const std::string& path, bool& out);
Status get(const Json& v, const std::string& path, uint16_t& out);
Status get(const Json& v, const std::string& path, uint32_t& out);
Status get(const Json& v, const std::string& path, uint64_t& out);
Status get(const Json& v, const std::string& path, int& out);
Status get(const Json& v, const std::string& path, int64_t& out);
Status get(const Json& v, const std::string& path, std::vector<std::string>& out);
Status get(const Json& v, const std::string& path, std::vector<uint32_t>& out);
Status get(const Json& v, const std::string& path, std::map<std::string, std::string>& out);
template <class T>
Status get(const Json& v, const std::string& path, std::optional<T>& out) {
  T value{};
  TRY(get(v, path, value));
  out = std::move(value);
  return ok();
}

// Type checks with the usual message ("<path>: expected an array, got 3").
Status check_array(const Json& v, const std::string& path);
Status check_object(const Json& v, const std::string& path);

class ObjectReader {
 public:
  // Fails unless v is an object. path is "" for a whole document; check_object() it first
  // with the document's name.
  static Result<ObjectReader> open(const Json& v, std::string path);

  const std::string& path() const { return path_; }
  std::string path_of(std::string_view key) const { return field_path(path_, key); }

  // The value of key, or nullptr when absent or null. Marks key as known.
  const Json* find(std::string_view key);
  // Same, but absent or null is an error "<path>.key: required".
  Result<const Json*> require(std::string_view key);

  // Reads an optional field into out (left untouched when absent).
  template <class T>
  Status read(std::string_view key, T& out) {
    const Json* v = find(key);
    if (v == nullptr) return ok();
    return get(*v, path_of(key), out);
  }
  template <class T>
  Status read_required(std::string_view key, T& out) {
    ASSIGN_OR_RETURN(const Json* v, require(key));
    return get(*v, path_of(key), out);
  }

  // A field the runtime-spec defines and strata does not implement: an error naming it unless
  // it is absent, null or empty ([] or {}), which asks for nothing.
  Status refuse(std::string_view key, std::string_view why = "not supported");
  // Marks key as known without reading it.
  void accept(std::string_view key);

  // The first key nobody asked about: `unknown field "<path>.key"`.
  Status finish() const;

 private:
  ObjectReader(const Json& v, std::string path) : obj_(&v), path_(std::move(path)) {}

  const Json* obj_;
  std::string path_;
  std::set<std::string, std::less<>> known_;
};

}  // namespace strata::oci::json_reader
