// Typed, path-named reading of untrusted JSON (json_reader.h). nlohmann's exceptions stop
// here: parse() catches them, and the accessors below only use the non-throwing get_ptr().
#include "oci/json_reader.h"

#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>
#include <utility>

namespace strata::oci::json_reader {
namespace {

// config.json is at most 6 levels deep (linux.seccomp.syscalls[].args[].op); anything much
// deeper is not a config and only costs stack in whoever walks it next.
constexpr size_t kMaxDepth = 64;
constexpr size_t kMaxShown = 64;

Error type_error(const std::string& path, std::string_view expected, const Json& v) {
  return Error(path + ": expected " + std::string(expected) + ", got " + describe(v));
}

template <class T>
Status get_integer(const Json& v, const std::string& path, T& out) {
  constexpr bool kUnsigned = std::is_unsigned_v<T>;
  constexpr std::string_view kExpected = kUnsigned ? "an unsigned integer" : "an integer";
  auto range_error = [&] {
    return Error(path + ": " + describe(v) + " is out of range (" +
                 std::to_string(std::numeric_limits<T>::min()) + ".." +
                 std::to_string(std::numeric_limits<T>::max()) + ")");
  };
  // nlohmann stores non-negative integers as number_unsigned and negative ones as
  // number_integer; floats (1.0, 1e3) are neither and are refused like Go's decoder does.
  if (const auto* u = v.get_ptr<const Json::number_unsigned_t*>()) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return range_error();
    out = static_cast<T>(*u);
    return ok();
  }
  if (const auto* i = v.get_ptr<const Json::number_integer_t*>()) {
    if constexpr (kUnsigned) {
      return type_error(path, kExpected, v);
    } else {
      if (*i < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          *i > static_cast<int64_t>(std::numeric_limits<T>::max()))
        return range_error();
      out = static_cast<T>(*i);
      return ok();
    }
  }
  return type_error(path, kExpected, v);
}

Status check_string(std::string_view s, const std::string& path) {
  // Every string here ends up in a C API (paths, argv, env, cgroup files) where a NUL would
  // silently cut it short.
  if (s.find('\0') != std::string_view::npos) return Error(path + ": contains a NUL byte");
  return ok();
}

bool is_empty_value(const Json& v) {
  if (v.is_null()) return true;
  if (v.is_array() || v.is_object()) return v.empty();
  if (const auto* s = v.get_ptr<const Json::string_t*>()) return s->empty();
  return false;
}

}  // namespace

Result<Json> parse(std::string_view text, std::string_view what) {
  std::vector<std::set<std::string>> keys;  // one per open object
  size_t depth = 0;
  std::string duplicate;
  bool too_deep = false;
  Json::parser_callback_t cb = [&](int, Json::parse_event_t ev, Json& parsed) {
    switch (ev) {
      case Json::parse_event_t::object_start:
        keys.emplace_back();
        [[fallthrough]];
      case Json::parse_event_t::array_start:
        if (++depth > kMaxDepth) too_deep = true;
        break;
      case Json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        [[fallthrough]];
      case Json::parse_event_t::array_end:
        if (depth > 0) --depth;
        break;
      case Json::parse_event_t::key:
        if (const auto* k = parsed.get_ptr<const Json::string_t*>())
          if (!keys.empty() && !keys.back().insert(*k).second && duplicate.empty()) duplicate = *k;
        break;
      case Json::parse_event_t::value:
        break;
    }
    return true;
  };
  Json j;
  try {
    j = Json::parse(text.data(), text.data() + text.size(), cb);
  } catch (const std::exception& e) {
    return Error("parse " + std::string(what) + ": " + e.what());
  }
  if (too_deep)
    return Error("parse " + std::string(what) + ": nested deeper than " + std::to_string(kMaxDepth));
  if (!duplicate.empty()) {
    return Error("parse " + std::string(what) + ": duplicate key " + describe(Json(duplicate)));
  }
  return j;
}

std::string describe(const Json& v) {
  if (v.is_object()) return "an object";
  if (v.is_array()) return "an array";
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (s.size() > kMaxShown) s = s.substr(0, kMaxShown) + "...";
  return s;
}

std::string field_path(std::string_view base, std::string_view key) {
  if (base.empty()) return std::string(key);
  std::string out(base);
  out += '.';
  out += key;
  return out;
}

std::string element_path(std::string_view base, size_t i) {
  return std::string(base) + "[" + std::to_string(i) + "]";
}

Status check_array(const Json& v, const std::string& path) {
  if (!v.is_array()) return type_error(path, "an array", v);
  return ok();
}

Status check_object(const Json& v, const std::string& path) {
  if (!v.is_object()) return type_error(path, "an object", v);
  return ok();
}

Status get(const Json& v, const std::string& path, std::string& out) {
  const auto* s = v.get_ptr<const Json::string_t*>();
  if (s == nullptr) return type_error(path, "a string", v);
  TRY(check_string(*s, path));
  out = *s;
  return ok();
}

Status get(const Json& v, const std::string& path, bool& out) {
  const auto* b = v.get_ptr<const Json::boolean_t*>();
  if (b == nullptr) return type_error(path, "a boolean", v);
  out = *b;
  return ok();
}

Status get(const Json& v, const std::string& path, uint16_t& out) { return get_integer(v, path, out); }
Status get(const Json& v, const std::string& path, uint32_t& out) { return get_integer(v, path, out); }
Status get(const Json& v, const std::string& path, uint64_t& out) { return get_integer(v, path, out); }
Status get(const Json& v, const std::string& path, int& out) { return get_integer(v, path, out); }
Status get(const Json& v, const std::string& path, int64_t& out) { return get_integer(v, path, out); }

Status get(const Json& v, const std::string& path, std::vector<std::string>& out) {
  TRY(check_array(v, path));
  std::vector<std::string> list;
  list.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    std::string s;
    TRY(get(v[i], element_path(path, i), s));
    list.push_back(std::move(s));
  }
  out = std::move(list);
  return ok();
}

Status get(const Json& v, const std::string& path, std::vector<uint32_t>& out) {
  TRY(check_array(v, path));
  std::vector<uint32_t> list;
  list.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t n = 0;
    TRY(get(v[i], element_path(path, i), n));
    list.push_back(n);
  }
  out = std::move(list);
  return ok();
}

Status get(const Json& v, const std::string& path, std::map<std::string, std::string>& out) {
  TRY(check_object(v, path));
  std::map<std::string, std::string> map;
  for (const auto& [key, value] : v.items()) {
    std::string p = field_path(path, key);
    TRY(check_string(key, p));
    std::string s;
    TRY(get(value, p, s));
    map.emplace(key, std::move(s));
  }
  out = std::move(map);
  return ok();
}

Result<ObjectReader> ObjectReader::open(const Json& v, std::string path) {
  TRY(check_object(v, path));
  return ObjectReader(v, std::move(path));
}

const Json* ObjectReader::find(std::string_view key) {
  known_.emplace(key);
  auto it = obj_->find(key);
  if (it == obj_->end() || it->is_null()) return nullptr;
  return &*it;
}

Result<const Json*> ObjectReader::require(std::string_view key) {
  const Json* v = find(key);
  if (v == nullptr) return Error(path_of(key) + ": required");
  return v;
}

Status ObjectReader::refuse(std::string_view key, std::string_view why) {
  const Json* v = find(key);
  if (v == nullptr || is_empty_value(*v)) return ok();
  return Error(path_of(key) + ": " + std::string(why));
}

void ObjectReader::accept(std::string_view key) { known_.emplace(key); }

Status ObjectReader::finish() const {
  for (const auto& [key, value] : obj_->items()) {
    (void)value;
    if (known_.find(key) == known_.end()) return Error("unknown field " + describe(Json(path_of(key))));
  }
  return ok();
}

}  // namespace strata::oci::json_reader
