#include "image/store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "base/digest.h"
#include "base/fs.h"

namespace strata::image {
namespace {

using namespace std::chrono_literals;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-store-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = ContentStore::open(dir_ + "/store");
    ASSERT_TRUE(s.ok()) << s.error().to_string();
    store_.emplace(std::move(*s));
  }
  void TearDown() override { ASSERT_TRUE(fs::remove_tree(dir_).ok()); }

  std::vector<std::string> blob_files() { return fs::list_dir(store_->root() + "/blobs/sha256"); }
  std::vector<std::string> ingest_data_files() {
    std::vector<std::string> out;
    for (auto& f : fs::list_dir(store_->root() + "/ingest"))
      if (f.find(".lock") == std::string::npos) out.push_back(f);
    return out;
  }
  std::vector<std::string> ingest_lock_files() {
    std::vector<std::string> out;
    for (auto& f : fs::list_dir(store_->root() + "/ingest"))
      if (f.find(".lock") != std::string::npos) out.push_back(f);
    return out;
  }
  std::string put(const std::string& data) {
    auto d = store_->put_blob(data);
    EXPECT_TRUE(d.ok()) << d.error().to_string();
    return d.ok() ? *d : std::string();
  }

  std::string dir_;
  std::optional<ContentStore> store_;
};

TEST_F(StoreTest, OpenCreatesLayout) {
  for (const char* sub : {"blobs/sha256", "ingest", "images"})
    EXPECT_TRUE(fs::is_dir(store_->root() + "/" + sub)) << sub;
}

TEST_F(StoreTest, PutReadVerify) {
  std::string d = put("hello world");
  EXPECT_EQ(d, sha256_digest("hello world"));
  EXPECT_TRUE(store_->has(d));
  EXPECT_EQ(store_->blob_path(d), store_->root() + "/blobs/sha256/" + std::string(digest_hex(d)));
  struct stat st;
  ASSERT_EQ(::stat(store_->blob_path(d).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
  auto back = store_->read_blob(d, 1024);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(*back, "hello world");
  auto small = store_->read_blob(d, 4);
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.error().message().find("limit of 4"), std::string::npos) << small.error().message();
  EXPECT_TRUE(ingest_data_files().empty());
  // Storing it again is a no-op.
  EXPECT_EQ(put("hello world"), d);
  EXPECT_EQ(blob_files().size(), 1u);
}

TEST_F(StoreTest, MismatchStoresNothing) {
  std::string wrong = sha256_digest("something else");
  auto r = store_->put_blob("hello", wrong);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find(wrong), std::string::npos);
  EXPECT_NE(r.error().message().find(sha256_digest("hello")), std::string::npos);
  EXPECT_FALSE(store_->has(wrong));
  EXPECT_FALSE(store_->has(sha256_digest("hello")));
  EXPECT_TRUE(blob_files().empty());
  EXPECT_TRUE(ingest_data_files().empty());
  EXPECT_FALSE(store_->put_blob("x", "sha512:abc").ok());
}

TEST_F(StoreTest, ReadBlobDetectsCorruption) {
  std::string d = put("original");
  std::string p = store_->blob_path(d);
  ASSERT_EQ(::chmod(p.c_str(), 0644), 0);
  ASSERT_TRUE(fs::write_file(p, "tampered").ok());
  auto r = store_->read_blob(d, 1024);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("corrupt"), std::string::npos) << r.error().message();
}

// A FIFO (or device) where a blob should be is refused at once: opening it would block.
TEST_F(StoreTest, ReadBlobRefusesAFifo) {
  std::string d = sha256_digest("never written");
  ASSERT_EQ(::mkfifo(store_->blob_path(d).c_str(), 0644), 0);
  auto r = store_->read_blob(d, 1024);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("is a FIFO"), std::string::npos) << r.error().message();
}

TEST_F(StoreTest, ResumeFromPartialData) {
  std::string data(100000, 'a');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 26);
  std::string d = sha256_digest(data);
  {
    auto w = store_->writer(d, static_cast<int64_t>(data.size()));
    ASSERT_TRUE(w.ok()) << w.error().to_string();
    EXPECT_EQ(w->offset(), 0u);
    ASSERT_TRUE(w->write(data.data(), 40000).ok());
    // Destroyed without commit: an interrupted download.
  }
  EXPECT_FALSE(store_->has(d));
  ASSERT_EQ(ingest_data_files().size(), 1u);
  auto w = store_->writer(d, static_cast<int64_t>(data.size()));
  ASSERT_TRUE(w.ok());
  EXPECT_FALSE(w->already_present());
  EXPECT_EQ(w->offset(), 40000u);
  ASSERT_TRUE(w->write(data.data() + 40000, data.size() - 40000).ok());
  ASSERT_TRUE(w->commit().ok());
  EXPECT_EQ(*store_->read_blob(d, 1 << 20), data);
  EXPECT_TRUE(ingest_data_files().empty());
}

TEST_F(StoreTest, RestartDiscardsPartialData) {
  std::string d = sha256_digest("abcdef");
  {
    auto w = store_->writer(d, 6);
    ASSERT_TRUE(w->write("xyz", 3).ok());
  }
  auto w = store_->writer(d, 6);
  EXPECT_EQ(w->offset(), 3u);
  ASSERT_TRUE(w->restart().ok());
  EXPECT_EQ(w->offset(), 0u);
  ASSERT_TRUE(w->write("abcdef", 6).ok());
  ASSERT_TRUE(w->commit().ok());
  EXPECT_EQ(*store_->read_blob(d, 100), "abcdef");
}

TEST_F(StoreTest, CommitMismatchDeletesPartialAndNamesBothDigests) {
  std::string d = sha256_digest("right");
  auto w = store_->writer(d, 5);
  ASSERT_TRUE(w->write("wrong", 5).ok());
  Status st = w->commit();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find(d), std::string::npos) << st.error().message();
  EXPECT_NE(st.error().message().find(sha256_digest("wrong")), std::string::npos) << st.error().message();
  EXPECT_FALSE(store_->has(d));
  EXPECT_TRUE(blob_files().empty());
  EXPECT_TRUE(ingest_data_files().empty());
}

TEST_F(StoreTest, SizeChecks) {
  std::string d = sha256_digest("12345");
  {
    auto w = store_->writer(d, 5);
    Status st = w->write("123456", 6);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message().find("expected 5 bytes"), std::string::npos) << st.error().message();
    EXPECT_TRUE(ingest_data_files().empty());
  }
  auto w = store_->writer(d, 5);
  ASSERT_TRUE(w->write("123", 3).ok());
  Status st = w->commit();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("got 3 bytes, expected 5"), std::string::npos) << st.error().message();
  EXPECT_FALSE(store_->has(d));
}

// Two writers of one blob in two threads: the second waits for the first's lock, then finds
// the blob present. One correct blob at the end.
TEST_F(StoreTest, ConcurrentWritersInThreads) {
  std::string data(1 << 20, 'z');
  std::string d = sha256_digest(data);
  std::atomic<int> present{0}, committed{0}, failed{0};
  auto work = [&] {
    auto w = store_->writer(d, static_cast<int64_t>(data.size()));
    if (!w.ok()) {
      ++failed;
      return;
    }
    if (w->already_present()) {
      ++present;
      return;
    }
    for (size_t off = 0; off < data.size(); off += 65536) {
      if (!w->write(data.data() + off, 65536).ok()) ++failed;
      std::this_thread::sleep_for(1ms);
    }
    if (w->commit().ok())
      ++committed;
    else
      ++failed;
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(committed, 1);
  EXPECT_EQ(present, 1);
  EXPECT_EQ(blob_files().size(), 1u);
  EXPECT_EQ(*store_->read_blob(d, 2 << 20), data);
}

TEST_F(StoreTest, ConcurrentWritersInProcesses) {
  std::string data(512 << 10, 'q');
  std::string d = sha256_digest(data);
  std::vector<pid_t> kids;
  for (int k = 0; k < 3; ++k) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto s = ContentStore::open(store_->root());
      if (!s.ok()) _exit(2);
      auto w = s->writer(d, static_cast<int64_t>(data.size()));
      if (!w.ok()) _exit(3);
      if (w->already_present()) _exit(10);
      for (size_t off = 0; off < data.size(); off += 32768) {
        if (!w->write(data.data() + off, 32768).ok()) _exit(4);
        usleep(500);
      }
      _exit(w->commit().ok() ? 0 : 5);
    }
    kids.push_back(pid);
  }
  int committed = 0, present = 0;
  for (pid_t pid : kids) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    int code = WEXITSTATUS(status);
    ASSERT_TRUE(code == 0 || code == 10) << "child exit " << code;
    (code == 0 ? committed : present)++;
  }
  EXPECT_EQ(committed, 1);
  EXPECT_EQ(present, 2);
  EXPECT_EQ(*store_->read_blob(d, 1 << 20), data);
  EXPECT_TRUE(ingest_data_files().empty());
}

// ingest/<hex>.lock lives only while a writer holds or waits for it: committed, failed,
// abandoned with partial data, or finding the blob present, a writer leaves no lock file.
TEST_F(StoreTest, LockFilesGoWithTheirWriter) {
  put("committed");
  EXPECT_TRUE(ingest_lock_files().empty()) << "after a commit";
  auto present = store_->put_blob("committed");
  ASSERT_TRUE(present.ok());
  EXPECT_TRUE(ingest_lock_files().empty()) << "after finding the blob present";
  {
    auto w = store_->writer(sha256_digest("right"), 5);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(ingest_lock_files().size(), 1u) << "held while writing";
    ASSERT_TRUE(w->write("wrong", 5).ok());
    EXPECT_FALSE(w->commit().ok());
  }
  EXPECT_TRUE(ingest_lock_files().empty()) << "after a digest mismatch";
  {
    auto w = store_->writer(sha256_digest("partial data"), 12);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->write("partial", 7).ok());
  }
  EXPECT_TRUE(ingest_lock_files().empty()) << "after a failed fetch";
  EXPECT_EQ(ingest_data_files().size(), 1u) << "its partial data stays for a resume";
  ASSERT_TRUE(store_->put_blob("partial data").ok());
  EXPECT_TRUE(fs::list_dir(store_->root() + "/ingest").empty());
}

// Removing lock files must not let two writers of one blob in at once: many threads race on one
// blob whose writers mostly give up (so the next waiter really writes), each checking that it is
// alone between getting its writer and dropping it.
TEST_F(StoreTest, RemovedLockFilesStillExcludeWriters) {
  std::string data = "contended blob";
  std::string d = sha256_digest(data);
  std::atomic<int> inside{0}, overlaps{0}, errors{0}, commits{0};
  std::atomic<int> turn{0};
  auto work = [&] {
    for (int round = 0; round < 20; ++round) {
      auto w = store_->writer(d, static_cast<int64_t>(data.size()));
      if (!w.ok()) {
        ++errors;
        continue;
      }
      if (w->already_present()) return;
      if (inside.fetch_add(1) != 0) ++overlaps;
      std::this_thread::sleep_for(200us);
      // Give up 29 times of 30, leaving the next writer to start from the partial data.
      bool last = turn.fetch_add(1) >= 29;
      if (!w->write(data.data() + w->offset(), last ? data.size() - w->offset() : 0).ok()) ++errors;
      inside.fetch_sub(1);
      if (last) {
        if (w->commit().ok())
          ++commits;
        else
          ++errors;
        return;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) threads.emplace_back(work);
  for (auto& t : threads) t.join();
  EXPECT_EQ(overlaps, 0) << "two writers held the same blob at once";
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(commits, 1);
  EXPECT_EQ(*store_->read_blob(d, 1024), data);
  EXPECT_TRUE(fs::list_dir(store_->root() + "/ingest").empty());
}

// A pull killed half-way (the process dies, its locks go with it) leaves only ingest/ data,
// which the next writer resumes.
TEST_F(StoreTest, KilledIngestLeavesOnlyPartialData) {
  std::string data(200000, 'k');
  std::string d = sha256_digest(data);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto w = store_->writer(d, static_cast<int64_t>(data.size()));
    if (!w.ok() || !w->write(data.data(), 120000).ok()) _exit(1);
    kill(getpid(), SIGKILL);
    _exit(2);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_FALSE(store_->has(d));
  EXPECT_TRUE(blob_files().empty());
  ASSERT_EQ(ingest_data_files().size(), 1u);
  auto w = store_->writer(d, static_cast<int64_t>(data.size()));
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->offset(), 120000u);
}

TEST_F(StoreTest, ImageRecordsAndRefcounts) {
  std::string shared = put("shared layer");
  std::string only_a = put("layer a");
  std::string only_b = put("layer b");
  std::string man_a = put("manifest a"), man_b = put("manifest b");
  const std::string a = "127.0.0.1:5000/team/app:v1";
  const std::string b = "docker.io/library/busybox@" + man_b;
  ASSERT_TRUE(store_->put_image({a, man_a, {man_a, shared, only_a}, ""}).ok());
  ASSERT_TRUE(store_->put_image({b, man_b, {man_b, shared, only_b, shared}, "2024-01-02T03:04:05Z"}).ok());
  auto got = store_->get_image(a);
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_EQ(got->name, a);
  EXPECT_EQ(got->digest, man_a);
  EXPECT_EQ(got->blobs.size(), 3u);
  EXPECT_FALSE(got->created.empty());
  EXPECT_EQ(store_->get_image(b)->blobs.size(), 3u) << "duplicates collapse";
  auto list = store_->list_images();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, a);
  EXPECT_EQ(list[1].name, b);

  auto removed = store_->remove_image(a);
  ASSERT_TRUE(removed.ok()) << removed.error().to_string();
  std::sort(removed->begin(), removed->end());
  std::vector<std::string> want = {man_a, only_a};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(*removed, want);
  EXPECT_TRUE(store_->has(shared)) << "still referenced by b";
  EXPECT_FALSE(store_->has(only_a));
  EXPECT_FALSE(store_->get_image(a).ok());
  EXPECT_EQ(store_->get_image(a).error().err(), ENOENT);

  removed = store_->remove_image(b);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed->size(), 3u);
  EXPECT_TRUE(blob_files().empty());
  EXPECT_FALSE(store_->remove_image(b).ok());
}

TEST_F(StoreTest, PutImageRefusesMissingBlobAndBadDigest) {
  std::string m = put("m");
  auto st = store_->put_image({"x", m, {m, sha256_digest("absent")}, ""});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("not in the store"), std::string::npos);
  EXPECT_FALSE(store_->put_image({"x", "sha256:zz", {m}, ""}).ok());
  EXPECT_FALSE(store_->put_image({"", m, {m}, ""}).ok());
  EXPECT_TRUE(store_->list_images().empty());
}

TEST_F(StoreTest, NamesAreEncodedSafely) {
  std::string m = put("m");
  std::vector<std::string> names = {"..",
                                    ".",
                                    "../../etc/passwd",
                                    "a/b:c@d",
                                    std::string(600, 'n'),
                                    std::string(300, '/'),
                                    "UPPER lower\t\n"};
  for (const auto& n : names) ASSERT_TRUE(store_->put_image({n, m, {m}, ""}).ok()) << n;
  for (const auto& n : names) {
    auto r = store_->get_image(n);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->name, n);
    std::string enc = ContentStore::encode_name(n);
    EXPECT_EQ(enc.find('/'), std::string::npos);
    EXPECT_NE(enc[0], '.');
    EXPECT_LE(enc.size(), 200u);
  }
  EXPECT_EQ(store_->list_images().size(), names.size());
  EXPECT_EQ(fs::list_dir(store_->root() + "/images").size(), names.size());
  EXPECT_FALSE(fs::exists(dir_ + "/etc"));
}

TEST_F(StoreTest, ReplacingARecordAndPrune) {
  std::string old_layer = put("old layer"), new_layer = put("new layer"), m1 = put("m1"), m2 = put("m2");
  std::string loose = put("never referenced");
  ASSERT_TRUE(store_->put_image({"app", m1, {m1, old_layer}, ""}).ok());
  ASSERT_TRUE(store_->put_image({"app", m2, {m2, new_layer}, ""}).ok());
  EXPECT_EQ(store_->get_image("app")->digest, m2);
  EXPECT_EQ(store_->list_images().size(), 1u);
  // Leftovers of a killed pull: data without a lock holder.
  ASSERT_TRUE(fs::write_file_atomic(store_->root() + "/ingest/" + std::string(64, 'a'), "partial").ok());
  ASSERT_TRUE(fs::write_file_atomic(store_->root() + "/ingest/" + std::string(64, 'a') + ".lock", "").ok());
  auto pruned = store_->prune();
  ASSERT_TRUE(pruned.ok()) << pruned.error().to_string();
  std::sort(pruned->begin(), pruned->end());
  std::vector<std::string> want = {old_layer, m1, loose};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(*pruned, want);
  EXPECT_TRUE(store_->has(m2));
  EXPECT_TRUE(store_->has(new_layer));
  EXPECT_TRUE(fs::list_dir(store_->root() + "/ingest").empty());
}

// prune() waits for a lease (a pull between finding a blob and recording its image) and for a
// live writer, and does not delete what they are working on.
TEST_F(StoreTest, PruneWaitsForLeaseAndWriters) {
  std::string found = put("already here");
  auto lease = store_->lease();
  ASSERT_TRUE(lease.ok());
  std::string d = sha256_digest("in flight");
  auto w = store_->writer(d, 9);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->write("in ", 3).ok());
  std::atomic<bool> done{false};
  std::thread pruner([&] {
    auto r = store_->prune();
    EXPECT_TRUE(r.ok());
    done = true;
  });
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(done) << "prune ran while a pull held the store";
  ASSERT_TRUE(w->write("flight", 6).ok());
  ASSERT_TRUE(w->commit().ok());
  ASSERT_TRUE(store_->put_image({"img", d, {d, found}, ""}).ok());
  { auto drop = std::move(*w); }
  { auto drop = std::move(*lease); }
  pruner.join();
  EXPECT_TRUE(done);
  EXPECT_TRUE(store_->has(found));
  EXPECT_TRUE(store_->has(d));
}

}  // namespace
}  // namespace strata::image
