// strata image save | load | import (also top-level, as podman has them), strata image export
// and strata export: thin wrappers over src/image/archive.h that pick the input/output file or stream.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "base/cleanup.h"
#include "base/digest.h"
#include "base/fd.h"
#include "cli/strata_commands.h"
#include "image/archive.h"
#include "image/images.h"
#include "sandbox/record.h"

namespace strata::cli {

namespace {

// Output to FILE through a temporary beside it (renamed on success, removed on failure) or to
// stdout when FILE is empty; a terminal is refused, binary data would only garble it.
Status write_output(const std::string& file, const std::function<Status(int)>& write) {
  if (file.empty()) {
    if (::isatty(1) == 1) return Error("refusing to write an archive to a terminal: use -o FILE or redirect");
    return write(1);
  }
  std::string tmp = file + ".tmp-XXXXXX";
  int raw = ::mkstemp(tmp.data());
  if (raw < 0) return Error::sys("create " + tmp);
  UniqueFd fd(raw);
  Cleanup remove_tmp([&] { ::unlink(tmp.c_str()); });
  TRY_CTX(write(fd.get()), file);
  if (::fchmod(fd.get(), 0644) != 0) return Error::sys("chmod " + tmp);
  if (::fsync(fd.get()) != 0) return Error::sys("fsync " + tmp);
  if (::rename(tmp.c_str(), file.c_str()) != 0) return Error::sys("rename " + tmp + " to " + file);
  remove_tmp.cancel();
  return ok();
}

// Input from FILE ("-" or empty: stdin, refused when it is a terminal).
Result<UniqueFd> open_input(const std::string& file) {
  if (file.empty() || file == "-") {
    if (::isatty(0) == 1)
      return Error("refusing to read an archive from a terminal: use -i FILE or redirect");
    int fd = ::dup(0);
    if (fd < 0) return Error::sys("dup stdin");
    return UniqueFd(fd);
  }
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::sys("open " + file);
  return fd;
}

int cmd_save(Globals& g, const std::vector<std::string>& images, const std::string& format,
             const std::string& out) {
  auto fmt = image::parse_archive_format(format);
  if (!fmt) return fail(fmt.error().context("--format"));
  auto svc = image::ImageService::open(g.root);
  if (!svc) return fail(svc.error());
  if (*fmt == image::ArchiveFormat::kOciDir) {
    if (out.empty()) return fail(Error("save --format oci-dir needs -o DIR"));
    Status st = image::save_oci_dir(*svc, images, out);
    return st.ok() ? 0 : fail(st.error());
  }
  Status st = write_output(out, [&](int fd) { return image::save_images(*svc, images, *fmt, fd); });
  return st.ok() ? 0 : fail(st.error());
}

int cmd_load(Globals& g, const std::string& input, bool quiet) {
  auto svc = image::ImageService::open(g.root);
  if (!svc) return fail(svc.error());
  Result<std::vector<image::LoadedImage>> loaded = Error("not loaded");
  struct stat sb;
  if (!input.empty() && input != "-" && ::stat(input.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode)) {
    loaded = image::load_oci_dir(*svc, input);
  } else {
    auto fd = open_input(input);
    if (!fd) return fail(fd.error());
    loaded = image::load_archive(*svc, fd->get());
  }
  if (!loaded) return fail(loaded.error());
  if (!quiet)
    for (const auto& img : *loaded) std::printf("Loaded image: %s\n", img.name.c_str());
  return 0;
}

int cmd_import(Globals& g, const std::string& input, const std::string& name) {
  auto svc = image::ImageService::open(g.root);
  if (!svc) return fail(svc.error());
  auto fd = open_input(input);
  if (!fd) return fail(fd.error());
  auto img = image::import_rootfs(*svc, fd->get(), name);
  if (!img) return fail(img.error());
  std::printf("%s\n", std::string(digest_hex(img->id)).c_str());
  return 0;
}

int cmd_export(Globals& g, const std::string& key, const std::string& out) {
  auto store = sandbox::ContainerStore::open(g.root);
  if (!store) return fail(store.error());
  auto id = store->resolve(key);
  if (!id) return fail(id.error());
  auto rec = store->load(*id);
  if (!rec) return fail(rec.error());
  Status st = ok();
  if (store->state(*rec) == sandbox::RunState::kRunning && rec->rootfs_mounted) {
    std::string rootfs = store->dir(*id) + "/bundle/rootfs";
    st = write_output(out, [&](int fd) { return image::export_tree(rootfs, fd); });
  } else {
    // Not running: its writable layer over its image's layers (or --rootfs), merged.
    std::vector<std::string> layers = {store->dir(*id) + "/upper"};
    if (!rec->config.rootfs.empty()) layers.push_back(rec->config.rootfs);
    layers.insert(layers.end(), rec->config.layers.rbegin(), rec->config.layers.rend());
    st = write_output(out, [&](int fd) { return image::export_layers(layers, fd); });
  }
  return st.ok() ? 0 : fail(st.error().context("export container " + key));
}

int cmd_image_export(Globals& g, const std::string& key, const std::string& out) {
  auto svc = image::ImageService::open(g.root);
  if (!svc) return fail(svc.error());
  auto img = svc->get(key);
  if (!img) return fail(img.error().context("export image " + key));
  std::vector<std::string> layers(img->layer_dirs.rbegin(), img->layer_dirs.rend());
  Status st = write_output(out, [&](int fd) { return image::export_layers(layers, fd); });
  return st.ok() ? 0 : fail(st.error().context("export image " + key));
}

void add_save(CLI::App* parent, Globals& g) {
  CLI::App* save =
      parent->add_subcommand("save", "Write images to an archive (docker-archive, oci-archive, oci-dir)");
  auto images = std::make_shared<std::vector<std::string>>();
  auto format = std::make_shared<std::string>("docker-archive");
  auto out = std::make_shared<std::string>();
  save->add_option("-o,--output", *out, "Write to this file (directory for oci-dir) instead of stdout");
  save->add_option("--format", *format, "docker-archive (default), oci-archive or oci-dir");
  save->add_option("image", *images, "Images (names or ids)")->required();
  save->callback([&g, images, format, out] { g.exit_code = cmd_save(g, *images, *format, *out); });
}

void add_load(CLI::App* parent, Globals& g) {
  CLI::App* load =
      parent->add_subcommand("load", "Load images from a docker-archive, oci-archive or OCI layout");
  auto input = std::make_shared<std::string>();
  auto quiet = std::make_shared<bool>(false);
  load->add_option("-i,--input", *input, "Read this file or OCI layout directory instead of stdin");
  load->add_flag("-q,--quiet", *quiet, "Print nothing");
  load->callback([&g, input, quiet] { g.exit_code = cmd_load(g, *input, *quiet); });
}

void add_import(CLI::App* parent, Globals& g) {
  CLI::App* imp = parent->add_subcommand("import", "Make a one-layer image from a rootfs tarball");
  auto input = std::make_shared<std::string>();
  auto name = std::make_shared<std::string>();
  imp->add_option("file", *input, "Tarball (tar, tar.gz, ...), - for stdin")->required();
  imp->add_option("name", *name, "Name of the new image");
  imp->callback([&g, input, name] { g.exit_code = cmd_import(g, *input, *name); });
}

}  // namespace

void add_image_archive_commands(CLI::App& image, Globals& g) {
  CLI::App& app = *image.get_parent();
  for (CLI::App* parent : {&image, &app}) {
    add_save(parent, g);
    add_load(parent, g);
    add_import(parent, g);
  }
  CLI::App* iexp = image.add_subcommand("export", "Write an image's filesystem (its layers merged) as a tar");
  auto ikey = std::make_shared<std::string>();
  auto iout = std::make_shared<std::string>();
  iexp->add_option("image", *ikey, "Image (name or id)")->required();
  iexp->add_option("-o,--output", *iout, "Write to this file instead of stdout");
  iexp->callback([&g, ikey, iout] { g.exit_code = cmd_image_export(g, *ikey, *iout); });

  CLI::App* exp = app.add_subcommand("export", "Write a container's filesystem as a tar");
  auto key = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  exp->add_option("container", *key, "Container (name or id)")->required();
  exp->add_option("-o,--output", *out, "Write to this file instead of stdout");
  exp->callback([&g, key, out] { g.exit_code = cmd_export(g, *key, *out); });
}

}  // namespace strata::cli
