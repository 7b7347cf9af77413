// strata image pull | push | ls | inspect | rm | prune | tag, strata login | logout, and the
// shortcuts `strata pull`, `strata push`, `strata images`, `strata rmi` (podman's names).
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "base/digest.h"
#include "base/rfc3339.h"
#include "base/strings.h"
#include "cli/strata_commands.h"
#include "image/auth_file.h"
#include "image/images.h"
#include "sandbox/record.h"

namespace strata::cli {

namespace {

using Json = nlohmann::json;

struct RegistryFlags {
  bool tls_verify = true;
  std::string auth_file, cert_dir;
};

void add_registry_flags(CLI::App* sub, RegistryFlags& f) {
  sub->add_option("--tls-verify", f.tls_verify,
                  "Verify the registry's TLS certificate (false also allows plain HTTP)");
  sub->add_option("--authfile", f.auth_file, "Credentials file (podman's auth.json format)");
  sub->add_option("--cert-dir", f.cert_dir, "Directory with CA certificates (<registry>/*.crt)");
}

image::RegistryOptions registry_options(const RegistryFlags& f) {
  image::RegistryOptions o;
  o.tls_verify = f.tls_verify;
  if (!f.tls_verify) o.insecure_http = true;
  o.auth_file = f.auth_file;
  if (!f.cert_dir.empty()) o.certs_dir = f.cert_dir;
  return o;
}

std::string short_hex(const std::string& digest, size_t n = 12) {
  return std::string(digest_hex(digest)).substr(0, n);
}

// Pull/push progress: a bar per blob redrawn in place on a terminal, a line per finished blob
// otherwise (logs and CI read those).
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), tty_(::isatty(2) == 1) {}

  void operator()(const image::ProgressEvent& e) {
    if (quiet_) return;
    using K = image::ProgressEvent;
    switch (e.kind) {
      case K::kResolved:
        std::fprintf(stderr, "Resolved manifest %s\n", e.message.c_str());
        break;
      case K::kLayerCached:
        line(e.digest, "Already exists");
        break;
      case K::kLayerStart:
        rows_[e.digest] = {0, e.total};
        if (!tty_) std::fprintf(stderr, "Copying blob %s\n", short_hex(e.digest).c_str());
        redraw();
        break;
      case K::kLayerProgress:
        rows_[e.digest] = {e.done, e.total};
        redraw();
        break;
      case K::kLayerDone:
        rows_[e.digest] = {e.total, e.total};
        if (!tty_)
          std::fprintf(stderr, "Copying blob %s done (%s)\n", short_hex(e.digest).c_str(),
                       human(e.total).c_str());
        redraw();
        break;
      case K::kUnpacked:
        if (!tty_) std::fprintf(stderr, "Unpacked layer %s\n", short_hex(e.digest).c_str());
        break;
      case K::kDone:
        redraw();
        break;
    }
  }

 private:
  struct Row {
    uint64_t done, total;
  };
  static std::string human(uint64_t b) {
    char buf[32];
    if (b >= (1 << 20))
      std::snprintf(buf, sizeof buf, "%.1fMiB", static_cast<double>(b) / (1 << 20));
    else if (b >= 1024)
      std::snprintf(buf, sizeof buf, "%.1fKiB", static_cast<double>(b) / 1024);
    else
      std::snprintf(buf, sizeof buf, "%lluB", static_cast<unsigned long long>(b));
    return buf;
  }
  void line(const std::string& digest, const char* what) {
    if (tty_ && drawn_ > 0) {
      std::fprintf(stderr, "\033[%zuA\033[J", drawn_);
      drawn_ = 0;
    }
    std::fprintf(stderr, "Copying blob %s %s\n", short_hex(digest).c_str(), what);
    redraw();
  }
  void redraw() {
    if (!tty_) return;
    if (drawn_ > 0) std::fprintf(stderr, "\033[%zuA", drawn_);
    for (const auto& [digest, r] : rows_) {
      int width = 30;
      int fill =
          r.total ? static_cast<int>(width * static_cast<double>(r.done) / static_cast<double>(r.total)) : 0;
      std::string bar(static_cast<size_t>(std::min(fill, width)), '=');
      bar.resize(static_cast<size_t>(width), ' ');
      std::fprintf(stderr, "\033[KCopying blob %s [%s] %s / %s\n", short_hex(digest).c_str(), bar.c_str(),
                   human(r.done).c_str(), human(r.total).c_str());
    }
    drawn_ = rows_.size();
    std::fflush(stderr);
  }

  bool quiet_, tty_;
  std::map<std::string, Row> rows_;
  size_t drawn_ = 0;
};

int cmd_pull(const Globals& g, const std::string& ref, const RegistryFlags& rf, bool quiet,
             const std::string& platform) {
  auto svc = image::ImageService::open(g.root);
  if (!svc) return fail(svc.error());
  image::PullOptions opts;
  opts.registry = registry_options(rf);
  if (!platform.empty()) {
    auto p = image::parse_platform(platform);
    if (!p) return fail(p.error().context("--platform"));
    opts.platform = *p;
  }
  Progress progress(quiet);
  opts.progress = [&](const image::ProgressEvent& e) { progress(e); };
  if (!quiet) std::fprintf(stderr, "Trying to pull %s...\n", ref.c_str());
  auto img = svc->pull(ref, opts);
  if (!img) return fail(img.error());
  std::printf("%s\n", std::string(digest_hex(img->id)).c_str());
  return 0;
}

std::string created_ago(const std::string& rfc3339) {
  auto t = parse_rfc3339(rfc3339);
  if (!t) return "";
  return human_duration(static_cast<int64_t>(std::time(nullptr)) - *t) + " ago";
}

int cmd_images(const Globals& g, const std::string& format, bool quiet) {
  auto svc = image::ImageService::open(g.root);
  if (!svc) return fail(svc.error());
  auto images = svc->list();
  if (format == "json") {
    Json out = Json::array();
    for (const auto& i : images) {
      out.push_back({{"Id", std::string(digest_hex(i.id))},
                     {"Names", {i.name}},
                     {"Digest", i.digest},
                     {"Created", i.created},
                     {"Size", i.size}});
    }
    std::printf("%s\n", out.dump(4).c_str());
    return 0;
  }
  if (quiet) {
    for (const auto& i : images) std::printf("%s\n", short_hex(i.id).c_str());
    return 0;
  }
  std::printf("%-48s %-16s %-14s %-18s %s\n", "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE");
  for (const auto& i : images) {
    auto ref = image::parse_reference(i.name);
    std::string repo = ref ? ref->repository() : i.name, tag = ref ? ref->tag : "";
    char size[32];
    std::snprintf(size, sizeof size, "%.1f MB", static_cast<double>(i.size) / 1e6);
    std::printf("%-48s %-16s %-14s %-18s %s\n", repo.c_str(), tag.empty() ? "<none>" : tag.c_str(),
                short_hex(i.id).c_str(), created_ago(i.created).c_str(), size);
  }
  return 0;
}

Json inspect_image(const image::LocalImage& i) {
  Json layers = Json::array();
  for (const auto& l : i.manifest.layers) layers.push_back(l.digest);
  Json ports = Json::object();
  for (const auto& p : i.config.exposed_ports) ports[p] = Json::object();
  Json out = {{"Id", std::string(digest_hex(i.id))},
              {"Digest", i.digest},
              {"RepoTags", {i.name}},
              {"Created", i.config.created},
              {"Architecture", i.config.architecture},
              {"Os", i.config.os},
              {"Size", i.size},
              {"Config",
               {{"User", i.config.user},
                {"Env", i.config.env},
                {"Entrypoint", i.config.entrypoint},
                {"Cmd", i.config.cmd},
                {"WorkingDir", i.config.working_dir},
                {"ExposedPorts", ports},
                {"Volumes", i.config.volumes},
                {"Labels", i.config.labels},
                {"StopSignal", i.config.stop_signal}}},
              {"RootFS", {{"Type", "layers"}, {"Layers", i.config.diff_ids}}},
              {"ManifestLayers", layers},
              {"MediaType", i.manifest.media_type}};
  if (const auto& h = i.config.healthcheck) {
    out["Config"]["Healthcheck"] = {{"Test", h->test},
                                    {"Interval", h->interval_ns},
                                    {"Timeout", h->timeout_ns},
                                    {"StartPeriod", h->start_period_ns},
                                    {"Retries", h->retries}};
  }
  return out;
}

// Containers (of any state) made from image id `id`: docker refuses to remove their image.
std::vector<std::string> containers_using(const Globals& g, const image::LocalImage& img) {
  std::vector<std::string> users;
  auto store = sandbox::ContainerStore::open(g.root);
  if (!store) return users;
  for (const auto& id : store->list_ids()) {
    auto rec = store->load(id);
    if (rec && rec->config.image_digest == img.digest) users.push_back(rec->name);
  }
  return users;
}

// The layer directories containers (of any state) are made of: their overlay's lower layers,
// which must outlive an image removed with -f or pruned, as docker keeps them.
std::set<std::string> layers_in_use(const Globals& g) {
  std::set<std::string> dirs;
  auto store = sandbox::ContainerStore::open(g.root);
  if (!store) return dirs;
  for (const auto& id : store->list_ids()) {
    if (auto rec = store->load(id)) dirs.insert(rec->config.layers.begin(), rec->config.layers.end());
  }
  return dirs;
}

}  // namespace

Result<RunImage> image_for_run(const Globals& g, const std::string& ref, const std::string& pull_policy) {
  if (pull_policy != "missing" && pull_policy != "always" && pull_policy != "never") {
    return Error("--pull " + pull_policy + ": expected missing, always or never");
  }
  ASSIGN_OR_RETURN(image::ImageService svc, image::ImageService::open(g.root));
  Result<image::LocalImage> img = Error("not looked up");
  if (pull_policy != "always") img = svc.get(ref);
  if (!img.ok() && pull_policy != "never") {
    if (pull_policy == "missing" && img.error().err() != ENOENT) return std::move(img).error();
    image::PullOptions opts;
    Progress progress(false);
    opts.progress = [&](const image::ProgressEvent& e) { progress(e); };
    std::fprintf(stderr, "Trying to pull %s...\n", ref.c_str());
    img = svc.pull(ref, opts);
  }
  if (!img) return std::move(img).error();
  RunImage r;
  r.name = img->name;
  r.digest = img->digest;
  r.layers = img->layer_dirs;
  r.config = img->config;
  return r;
}

void add_image_commands(CLI::App& app, Globals& g) {
  CLI::App* img = app.add_subcommand("image", "Manage images");
  img->require_subcommand(1);
  add_image_archive_commands(*img, g);

  // pull (also `strata pull`)
  for (CLI::App* parent : {img, &app}) {
    auto* rf = new RegistryFlags();
    auto* ref = new std::string();
    auto* quiet = new bool(false);
    auto* platform = new std::string();
    CLI::App* pull = parent->add_subcommand("pull", "Pull an image from a registry");
    add_registry_flags(pull, *rf);
    pull->add_flag("-q,--quiet", *quiet, "No progress output");
    pull->add_option("--platform", *platform, "os/arch[/variant] (default: this machine's)");
    pull->add_option("image", *ref, "Image reference")->required();
    pull->callback(
        [&g, rf, ref, quiet, platform] { g.exit_code = cmd_pull(g, *ref, *rf, *quiet, *platform); });

    auto* prf = new RegistryFlags();
    auto* src = new std::string();
    auto* dst = new std::string();
    CLI::App* push = parent->add_subcommand("push", "Push an image to a registry");
    add_registry_flags(push, *prf);
    push->add_option("image", *src, "Local image")->required();
    push->add_option("destination", *dst, "Destination reference (default: the image's name)");
    push->callback([&g, prf, src, dst] {
      auto svc = image::ImageService::open(g.root);
      if (!svc) {
        g.exit_code = fail(svc.error());
        return;
      }
      Progress progress(false);
      Status s =
          svc->push(*src, *dst, registry_options(*prf), [&](const image::ProgressEvent& e) { progress(e); });
      if (!s.ok()) g.exit_code = fail(s.error());
    });
  }

  for (CLI::App* parent : {img, &app}) {
    auto* format = new std::string();
    auto* quiet = new bool(false);
    CLI::App* ls = parent == img ? img->add_subcommand("ls", "List images")
                                 : app.add_subcommand("images", "List images");
    if (parent == img) ls->alias("list");
    ls->add_option("--format", *format, "table or json");
    ls->add_flag("-q,--quiet", *quiet, "Print only ids");
    ls->callback([&g, format, quiet] { g.exit_code = cmd_images(g, *format, *quiet); });

    auto* keys = new std::vector<std::string>();
    auto* force = new bool(false);
    CLI::App* rm = parent == img ? img->add_subcommand("rm", "Remove images")
                                 : app.add_subcommand("rmi", "Remove images");
    rm->add_flag("-f,--force", *force, "Remove even when containers use the image");
    rm->add_option("images", *keys, "Names or ids")->required();
    rm->callback([&g, keys, force] {
      auto svc = image::ImageService::open(g.root);
      if (!svc) {
        g.exit_code = fail(svc.error());
        return;
      }
      for (const auto& k : *keys) {
        auto local = svc->get(k);
        if (!local) {
          g.exit_code = fail(local.error());
          continue;
        }
        auto users = containers_using(g, *local);
        if (!users.empty() && !*force) {
          g.exit_code = fail(
              Error("image " + k + " is in use by container " + users[0] + " (remove it first, or use -f)"));
          continue;
        }
        auto names = svc->remove(k, layers_in_use(g));
        if (!names) {
          g.exit_code = fail(names.error());
          continue;
        }
        for (const auto& n : *names) std::printf("Untagged: %s\n", n.c_str());
        std::printf("Deleted: %s\n", std::string(digest_hex(local->id)).c_str());
      }
    });
  }

  auto* ikeys = new std::vector<std::string>();
  CLI::App* inspect = img->add_subcommand("inspect", "Show an image's configuration as JSON");
  inspect->add_option("images", *ikeys, "Names or ids")->required();
  inspect->callback([&g, ikeys] {
    auto svc = image::ImageService::open(g.root);
    if (!svc) {
      g.exit_code = fail(svc.error());
      return;
    }
    Json out = Json::array();
    for (const auto& k : *ikeys) {
      auto i = svc->get(k);
      if (!i) {
        g.exit_code = fail(i.error());
        continue;
      }
      out.push_back(inspect_image(*i));
    }
    std::printf("%s\n", out.dump(4).c_str());
  });

  CLI::App* prune =
      img->add_subcommand("prune", "Delete blobs and layers no image uses, and interrupted downloads");
  prune->callback([&g] {
    auto svc = image::ImageService::open(g.root);
    if (!svc) {
      g.exit_code = fail(svc.error());
      return;
    }
    auto gone = svc->prune(layers_in_use(g));
    if (!gone) {
      g.exit_code = fail(gone.error());
      return;
    }
    for (const auto& d : *gone) std::printf("deleted %s\n", d.c_str());
  });

  auto* tsrc = new std::string();
  auto* tdst = new std::vector<std::string>();
  CLI::App* tag = img->add_subcommand("tag", "Add names to an image");
  tag->add_option("image", *tsrc, "Existing image")->required();
  tag->add_option("names", *tdst, "New names")->required();
  tag->callback([&g, tsrc, tdst] {
    auto svc = image::ImageService::open(g.root);
    if (!svc) {
      g.exit_code = fail(svc.error());
      return;
    }
    for (const auto& t : *tdst) {
      Status s = svc->tag(*tsrc, t);
      if (!s.ok()) g.exit_code = fail(s.error());
    }
  });

  // login / logout: podman's auth.json, so podman and skopeo share the credentials.
  auto* lf = new RegistryFlags();
  auto* user = new std::string();
  auto* pass = new std::string();
  auto* pass_stdin = new bool(false);
  auto* server = new std::string();
  CLI::App* login = app.add_subcommand("login", "Log in to a registry (stores credentials in auth.json)");
  add_registry_flags(login, *lf);
  login->add_option("-u,--username", *user, "User name")->required();
  login->add_option("-p,--password", *pass, "Password");
  login->add_flag("--password-stdin", *pass_stdin, "Read the password from stdin");
  login->add_option("registry", *server, "Registry host[:port]")->required();
  login->callback([&g, lf, user, pass, pass_stdin, server] {
    if (*pass_stdin) std::getline(std::cin, *pass);
    if (pass->empty()) {
      g.exit_code = fail(Error("login: a password is required (-p or --password-stdin)"));
      return;
    }
    image::RegistryOptions opts = registry_options(*lf);
    std::string file = lf->auth_file.empty() ? image::default_auth_file() : lf->auth_file;
    // Checked before it is stored: the registry must accept the credentials.
    std::string tmp = file + ".login-check";
    Status saved = image::save_credentials(tmp, *server, *user, *pass);
    if (!saved.ok()) {
      g.exit_code = fail(saved.error());
      return;
    }
    opts.auth_file = tmp;
    image::RegistryClient client(*server, opts);
    Status ping = client.ping();
    ::unlink(tmp.c_str());
    if (!ping.ok()) {
      g.exit_code = fail(ping.error().context("login " + *server));
      return;
    }
    Status s = image::save_credentials(file, *server, *user, *pass);
    if (!s.ok()) {
      g.exit_code = fail(s.error());
      return;
    }
    std::printf("Login Succeeded!\n");
  });

  auto* lof = new std::string();
  auto* loserver = new std::string();
  CLI::App* logout = app.add_subcommand("logout", "Remove stored credentials of a registry");
  logout->add_option("--authfile", *lof, "Credentials file");
  logout->add_option("registry", *loserver, "Registry host[:port]")->required();
  logout->callback([&g, lof, loserver] {
    Status s = image::remove_credentials(lof->empty() ? image::default_auth_file() : *lof, *loserver);
    if (!s.ok()) {
      g.exit_code = fail(s.error().context("logout " + *loserver));
      return;
    }
    std::printf("Removed login credentials for %s\n", loserver->c_str());
  });
}

}  // namespace strata::cli
