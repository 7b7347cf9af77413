// Image config parsing (image_config.h). Field names follow config.md exactly ("config.Env",
// "rootfs.diff_ids"); Go writers put null for empty lists, which json_reader reads as absent.
#include "image/image_config.h"

#include <nlohmann/json.hpp>

#include "base/digest.h"
#include "base/strings.h"
#include "image/shown_name.h"
#include "oci/json_reader.h"

namespace strata::image {
namespace {

namespace jr = oci::json_reader;
using jr::Json;
using jr::ObjectReader;

// "80/tcp", "53/udp", "132/sctp"; a bare "80" is tcp, as docker reads it.
Result<std::string> normalize_port(const std::string& key, const std::string& path) {
  std::string_view port = key;
  std::string_view proto = "tcp";
  if (size_t slash = port.find('/'); slash != std::string_view::npos) {
    proto = port.substr(slash + 1);
    port = port.substr(0, slash);
  }
  auto n = str::parse_uint(port);
  if (!n || *n == 0 || *n > 65535 || port.front() == '+')
    return Error(path + ": port " + shown_name(port) + " is not a number in 1..65535");
  if (proto != "tcp" && proto != "udp" && proto != "sctp")
    return Error(path + ": protocol " + shown_name(proto) + " is not tcp, udp or sctp");
  return std::to_string(*n) + "/" + std::string(proto);
}

// ExposedPorts and Volumes are Go map[string]struct{}: only the keys carry meaning.
Result<std::vector<std::string>> read_key_set(ObjectReader& r, std::string_view key) {
  std::vector<std::string> keys;
  const Json* v = r.find(key);
  if (v == nullptr) return keys;
  std::string path = r.path_of(key);
  TRY(jr::check_object(*v, path));
  for (const auto& [k, value] : v->items()) {
    (void)value;
    std::string s;
    TRY(jr::get(Json(k), jr::field_path(path, k), s));  // refuses a NUL inside the key
    keys.push_back(std::move(s));
  }
  return keys;
}

Status read_duration(ObjectReader& r, std::string_view key, int64_t& out) {
  TRY(r.read(key, out));
  if (out < 0) return Error(r.path_of(key) + ": " + std::to_string(out) + " is negative");
  return ok();
}

Result<Healthcheck> parse_healthcheck(const Json& v, const std::string& path) {
  ASSIGN_OR_RETURN(auto r, ObjectReader::open(v, path));
  Healthcheck h;
  TRY(r.read("Test", h.test));
  TRY(read_duration(r, "Interval", h.interval_ns));
  TRY(read_duration(r, "Timeout", h.timeout_ns));
  TRY(read_duration(r, "StartPeriod", h.start_period_ns));
  TRY(r.read("Retries", h.retries));
  if (h.retries < 0) return Error(r.path_of("Retries") + ": " + std::to_string(h.retries) + " is negative");
  return h;
}

Status parse_run_config(const Json& v, ImageConfig& c) {
  ASSIGN_OR_RETURN(auto r, ObjectReader::open(v, "config"));
  TRY(r.read("User", c.user));
  TRY(r.read("WorkingDir", c.working_dir));
  TRY(r.read("StopSignal", c.stop_signal));
  TRY(r.read("Env", c.env));
  TRY(r.read("Entrypoint", c.entrypoint));
  TRY(r.read("Cmd", c.cmd));
  TRY(r.read("Labels", c.labels));
  ASSIGN_OR_RETURN(std::vector<std::string> ports, read_key_set(r, "ExposedPorts"));
  for (const auto& p : ports) {
    ASSIGN_OR_RETURN(std::string port, normalize_port(p, r.path_of("ExposedPorts")));
    c.exposed_ports.push_back(std::move(port));
  }
  ASSIGN_OR_RETURN(c.volumes, read_key_set(r, "Volumes"));
  for (const auto& vol : c.volumes)
    if (vol.empty() || vol.front() != '/')
      return Error(r.path_of("Volumes") + ": " + shown_name(vol) + " is not an absolute path");
  if (const Json* h = r.find("Healthcheck")) {
    ASSIGN_OR_RETURN(Healthcheck hc, parse_healthcheck(*h, r.path_of("Healthcheck")));
    c.healthcheck = std::move(hc);
  }
  return ok();
}

Result<ImageConfig> parse_config(std::string_view body) {
  if (body.size() > kMaxConfigBytes)
    return Error(std::to_string(body.size()) + " bytes is over the limit of " +
                 std::to_string(kMaxConfigBytes));
  ASSIGN_OR_RETURN(Json j, jr::parse(body, "JSON"));
  TRY(jr::check_object(j, "image config"));
  ASSIGN_OR_RETURN(auto r, ObjectReader::open(j, ""));
  ImageConfig c;
  TRY(r.read_required("architecture", c.architecture));
  TRY(r.read_required("os", c.os));
  TRY(r.read("variant", c.variant));
  TRY(r.read("created", c.created));
  TRY(r.read("author", c.author));
  if (const Json* run = r.find("config")) TRY(parse_run_config(*run, c));

  ASSIGN_OR_RETURN(const Json* rootfs_json, r.require("rootfs"));
  ASSIGN_OR_RETURN(auto rootfs, ObjectReader::open(*rootfs_json, "rootfs"));
  std::string type;
  TRY(rootfs.read_required("type", type));
  if (type != "layers") return Error("rootfs.type: " + shown_name(type) + " is not \"layers\"");
  ASSIGN_OR_RETURN(const Json* ids, rootfs.require("diff_ids"));
  TRY(jr::get(*ids, "rootfs.diff_ids", c.diff_ids));
  for (size_t i = 0; i < c.diff_ids.size(); ++i)
    TRY_CTX(validate_digest(c.diff_ids[i]), jr::element_path("rootfs.diff_ids", i));
  return c;
}

}  // namespace

Result<ImageConfig> parse_image_config(std::string_view body) {
  auto r = parse_config(body);
  if (!r.ok()) return std::move(r).error().context("parse image config");
  return r;
}

Status check_config_matches(const Manifest& manifest, const ImageConfig& config) {
  if (manifest.layers.size() != config.diff_ids.size())
    return Error("image config " + manifest.config.digest + " lists " +
                 std::to_string(config.diff_ids.size()) + " diff_ids but the manifest has " +
                 std::to_string(manifest.layers.size()) + " layers");
  return ok();
}

}  // namespace strata::image
