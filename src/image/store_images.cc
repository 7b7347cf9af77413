// ContentStore image records: one JSON file per image name under images/, reference counts
// derived from them (a blob's count is the number of records listing it), and garbage
// collection (remove_image, prune). See store.h for the locking protocol.
#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "base/fs.h"
#include "base/log.h"
#include "base/rfc3339.h"
#include "image/store.h"

namespace strata::image {

namespace {

// Names longer than this are stored under the hash of the name: an encoded name can be three
// times as long as the name, and file names are limited to 255 bytes.
constexpr size_t kMaxEncodedName = 180;
constexpr size_t kMaxRecordSize = 16 << 20;

bool is_plain(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.';
}

// Atomic write with a unique temporary: several threads of one process may write records.
Status write_record_file(const std::string& dir, const std::string& path, const std::string& data) {
  std::string tmpl = dir + "/.tmp-XXXXXX";
  int raw = ::mkstemp(tmpl.data());
  if (raw < 0) return Error::sys("create temporary in " + dir);
  UniqueFd fd(raw);
  Status st = ok();
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      st = Error::sys("write " + tmpl);
      break;
    }
    off += static_cast<size_t>(n);
  }
  if (st.ok() && ::fchmod(fd.get(), 0644) != 0) st = Error::sys("chmod " + tmpl);
  if (st.ok() && ::fsync(fd.get()) != 0) st = Error::sys("fsync " + tmpl);
  fd.reset();
  if (st.ok() && ::rename(tmpl.c_str(), path.c_str()) != 0) st = Error::sys("rename " + tmpl + " to " + path);
  if (!st.ok()) {
    ::unlink(tmpl.c_str());
    return st;
  }
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd) ::fsync(dfd.get());
  return ok();
}

Result<ContentStore::ImageRecord> parse_record(const std::string& text, const std::string& path) {
  try {
    auto j = nlohmann::json::parse(text);
    ContentStore::ImageRecord r;
    r.name = j.at("name").get<std::string>();
    r.digest = j.at("digest").get<std::string>();
    r.blobs = j.at("blobs").get<std::vector<std::string>>();
    if (j.contains("created")) r.created = j.at("created").get<std::string>();
    for (const auto& b : r.blobs) TRY_CTX(validate_digest(b), "image record " + path);
    return r;
  } catch (const nlohmann::json::exception& e) {
    return Error("image record " + path + ": " + e.what());
  }
}

}  // namespace

std::string ContentStore::encode_name(std::string_view name) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : name) {
    if (is_plain(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  // "." and ".." are directory entries; a leading dot would also hide the file.
  if (!out.empty() && out[0] == '.') out = "%2E" + out.substr(1);
  // '@' is never plain, so hashed names cannot collide with encoded ones.
  if (out.size() > kMaxEncodedName) out = "@" + std::string(digest_hex(sha256_digest(name)));
  return out;
}

std::string ContentStore::image_path(std::string_view name) const {
  return root_ + "/images/" + encode_name(name) + ".json";
}

Status ContentStore::put_image(const ImageRecord& record) {
  std::string what = "store image record \"" + record.name + "\"";
  if (record.name.empty()) return Error("store image record: empty image name");
  TRY_CTX(validate_digest(record.digest), what);
  ASSIGN_OR_RETURN(UniqueFd lock, lock_store(false));
  ImageRecord r = record;
  std::sort(r.blobs.begin(), r.blobs.end());
  r.blobs.erase(std::unique(r.blobs.begin(), r.blobs.end()), r.blobs.end());
  for (const auto& b : r.blobs) {
    TRY_CTX(validate_digest(b), what);
    if (!has(b)) return Error(what + ": blob " + b + " is not in the store");
  }
  if (r.created.empty()) r.created = now_rfc3339();
  nlohmann::json j = {{"name", r.name}, {"digest", r.digest}, {"blobs", r.blobs}, {"created", r.created}};
  TRY_CTX(write_record_file(root_ + "/images", image_path(r.name), j.dump(2) + "\n"), what);
  return ok();
}

Result<ContentStore::ImageRecord> ContentStore::get_image(const std::string& name) const {
  std::string path = image_path(name);
  auto text = fs::read_file(path, kMaxRecordSize);
  if (!text.ok()) {
    if (text.error().err() == ENOENT) return Error("image \"" + name + "\" not found", ENOENT);
    return std::move(text).error().context("read image \"" + name + "\"");
  }
  ASSIGN_OR_RETURN(ImageRecord r, parse_record(*text, path));
  if (r.name != name)
    return Error("image record " + path + " names \"" + r.name + "\", not \"" + name + "\"");
  return r;
}

Result<std::vector<ContentStore::ImageRecord>> ContentStore::read_records(bool strict) const {
  std::vector<ImageRecord> out;
  std::string dir = root_ + "/images";
  for (const auto& entry : fs::list_dir(dir)) {
    if (entry.size() < 6 || entry.compare(entry.size() - 5, 5, ".json") != 0 || entry[0] == '.') continue;
    std::string path = dir + "/" + entry;
    auto text = fs::read_file(path, kMaxRecordSize);
    Result<ImageRecord> r = text.ok() ? parse_record(*text, path) : Result<ImageRecord>(text.error());
    if (!r.ok()) {
      // Deleting blobs on the word of a partial set of records could delete a used blob.
      if (strict) return std::move(r).error().context("read image records");
      log::get("image")->warn("skipping image record {}: {}", path, r.error().to_string());
      continue;
    }
    out.push_back(std::move(*r));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

std::vector<ContentStore::ImageRecord> ContentStore::list_images() const {
  auto r = read_records(false);
  return r.ok() ? std::move(*r) : std::vector<ImageRecord>{};
}

Result<std::vector<std::string>> ContentStore::remove_image(const std::string& name) {
  std::string what = "remove image \"" + name + "\"";
  ASSIGN_OR_RETURN(UniqueFd lock, lock_store(true));
  ASSIGN_OR_RETURN(ImageRecord victim, get_image(name));
  ASSIGN_OR_RETURN(auto records, read_records(true));
  std::set<std::string> still_used;
  for (const auto& r : records)
    if (r.name != name) still_used.insert(r.blobs.begin(), r.blobs.end());
  std::string path = image_path(name);
  if (::unlink(path.c_str()) != 0) return Error::sys(what + ": unlink " + path);
  std::vector<std::string> deleted;
  for (const auto& b : victim.blobs) {
    if (still_used.count(b) || !has(b)) continue;
    std::string p = blob_path(b);
    if (::unlink(p.c_str()) != 0) return Error::sys(what + ": unlink blob " + p);
    deleted.push_back(b);
  }
  return deleted;
}

Result<std::vector<std::string>> ContentStore::prune() {
  ASSIGN_OR_RETURN(UniqueFd lock, lock_store(true));
  ASSIGN_OR_RETURN(auto records, read_records(true));
  std::set<std::string> used;
  for (const auto& r : records) used.insert(r.blobs.begin(), r.blobs.end());
  std::vector<std::string> deleted;
  std::string blobs = root_ + "/blobs/sha256";
  for (const auto& entry : fs::list_dir(blobs)) {
    std::string digest = "sha256:" + entry;
    if (used.count(digest)) continue;
    std::string p = blobs + "/" + entry;
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) return Error::sys("prune: unlink " + p);
    if (is_sha256_digest(digest)) deleted.push_back(digest);
  }
  // Writers hold the shared store lock, so none is alive now; the per-blob lock is still tried
  // so that a writer of another store version (or a bug) is never pulled out from under.
  std::string ingest = root_ + "/ingest";
  for (const auto& entry : fs::list_dir(ingest)) {
    if (entry.size() > 5 && entry.compare(entry.size() - 5, 5, ".lock") == 0) continue;
    std::string data = ingest + "/" + entry;
    std::string lock_path = data + ".lock";
    UniqueFd lfd(::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (lfd && ::flock(lfd.get(), LOCK_EX | LOCK_NB) != 0) continue;
    if (::unlink(data.c_str()) != 0 && errno != ENOENT) return Error::sys("prune: unlink " + data);
    log::get("image")->debug("pruned partial download {}", data);
  }
  for (const auto& entry : fs::list_dir(ingest)) {
    if (entry.size() <= 5 || entry.compare(entry.size() - 5, 5, ".lock") != 0) continue;
    std::string data = ingest + "/" + entry.substr(0, entry.size() - 5);
    if (fs::exists(data)) continue;
    // Left by a killed writer (a live one removes its own): removed while held, as any lock
    // file must be (file_lock.h).
    auto held = detail::FileLock::try_existing(ingest + "/" + entry);
    if (held.ok()) held->release();
  }
  return deleted;
}

Result<std::vector<std::string>> ContentStore::remove_unreferenced(const std::vector<std::string>& digests) {
  ASSIGN_OR_RETURN(UniqueFd lock, lock_store(true));
  ASSIGN_OR_RETURN(auto records, read_records(true));
  std::set<std::string> used;
  for (const auto& r : records) used.insert(r.blobs.begin(), r.blobs.end());
  std::vector<std::string> deleted;
  for (const auto& d : digests) {
    if (used.count(d) || !is_sha256_digest(d)) continue;
    std::string p = blob_path(d);
    if (::unlink(p.c_str()) != 0) {
      if (errno == ENOENT) continue;
      return Error::sys("remove blob " + p);
    }
    deleted.push_back(d);
  }
  return deleted;
}

}  // namespace strata::image
