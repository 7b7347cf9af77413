// Full snapshots (Firecracker's /snapshot/create and /snapshot/load): a JSON state file (the
// machine's shape, device specs, vCPU/irqchip/PIT/clock blobs in base64, serial and virtio
// transport state) and a raw memory file (regions back to back, as GuestMemory::map_file reads
// it). Restore maps the memory file privately, so the guest's pages load on first touch.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <future>

#include <nlohmann/json.hpp>

#include "base/fd.h"
#include "base/fs.h"
#include "base/strings.h"
#include "vmm/host_files.h"
#include "vmm/machine.h"

namespace strata::vmm {

namespace {

using Json = nlohmann::json;
constexpr const char* kFormat = "strata-vm-snapshot";
constexpr int kVersion = 1;

std::string b64(const std::vector<uint8_t>& v) {
  return str::base64_encode(std::string_view(reinterpret_cast<const char*>(v.data()), v.size()));
}

Result<std::vector<uint8_t>> unb64(const Json& j, const std::string& what) {
  if (!j.is_string()) return Error("snapshot: " + what + " is not a string");
  auto s = str::base64_decode(j.get<std::string>());
  if (!s) return Error("snapshot: " + what + " is not base64");
  return std::vector<uint8_t>(s->begin(), s->end());
}

Json device_json(const DeviceSpec& d) {
  return {{"kind", static_cast<int>(d.kind)}, {"id", d.id},   {"path", d.path}, {"read_only", d.read_only},
          {"flush", d.flush},                 {"tap", d.tap}, {"mac", d.mac},   {"cid", d.cid},
          {"uds_path", d.uds_path}};
}

DeviceSpec device_from_json(const Json& j) {
  DeviceSpec d;
  d.kind = static_cast<DeviceSpec::Kind>(j.value("kind", 0));
  d.id = j.value("id", "");
  d.path = j.value("path", "");
  d.read_only = j.value("read_only", false);
  d.flush = j.value("flush", true);
  d.tap = j.value("tap", "");
  d.mac = j.value("mac", "");
  d.cid = j.value("cid", uint64_t{0});
  d.uds_path = j.value("uds_path", "");
  return d;
}

// Which pages of a region may hold data. Anonymous memory: the pages present or swapped out
// (/proc/self/pagemap bits 63 and 62); a page never touched is zero. Memory mapped from a
// snapshot file: every page (one the guest has not touched still holds the file's data).
Result<std::vector<bool>> pages_with_data(const GuestMemory& mem, const MemoryRegion& r, size_t page) {
  size_t pages = static_cast<size_t>(r.size / page);
  if (mem.file_backed()) return std::vector<bool>(pages, true);
  std::vector<bool> out(pages, false);
  UniqueFd pm(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!pm) return Error::sys("open /proc/self/pagemap");
  std::vector<uint64_t> entries(4096);
  for (size_t i = 0; i < pages; i += entries.size()) {
    size_t n = std::min(entries.size(), pages - i);
    off_t off = static_cast<off_t>((reinterpret_cast<uintptr_t>(r.host) / page + i) * sizeof(uint64_t));
    ssize_t got = ::pread(pm.get(), entries.data(), n * sizeof(uint64_t), off);
    if (got != static_cast<ssize_t>(n * sizeof(uint64_t))) return Error::sys("read /proc/self/pagemap");
    for (size_t k = 0; k < n; ++k) out[i + k] = (entries[k] >> 62) & 3;  // present or swapped
  }
  return out;
}

bool all_zero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    if (v != 0) return false;
  }
  return true;
}

// Writes every page that may hold data and is not all zeros at its file offset; the rest stay
// holes in the file (a 128 MiB guest that touched 80 KiB takes 80 KiB on disk).
Status write_memory(const GuestMemory& mem, int fd) {
  if (::ftruncate(fd, static_cast<off_t>(mem.size())) != 0) return Error::sys("size the memory file");
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  for (const auto& r : mem.regions()) {
    ASSIGN_OR_RETURN(auto data, pages_with_data(mem, r, page));
    size_t pages = data.size();
    size_t i = 0;
    while (i < pages) {
      if (!data[i] || all_zero(r.host + i * page, page)) {
        ++i;
        continue;
      }
      size_t j = i + 1;
      while (j < pages && data[j] && !all_zero(r.host + j * page, page)) ++j;
      size_t off = i * page, len = (j - i) * page;
      size_t done = 0;
      while (done < len) {
        ssize_t n = ::pwrite(fd, r.host + off + done, len - done, static_cast<off_t>(r.file_offset + off + done));
        if (n < 0) {
          if (errno == EINTR) continue;
          return Error::sys("write the memory file");
        }
        done += static_cast<size_t>(n);
      }
      i = j;
    }
  }
  return ok();
}

}  // namespace

Status Machine::snapshot(const std::string& state_path, const std::string& mem_path) {
  if (!paused_) return Error("the VM must be paused for a snapshot");
  Json j;
  j["format"] = kFormat;
  j["version"] = kVersion;
  j["vcpus"] = spec_.vcpus;
  j["mem_size"] = mem_.size();
  j["cmdline"] = cmdline_;
  Json devs = Json::array();
  for (const auto& d : spec_.devices) devs.push_back(device_json(d));
  j["devices"] = devs;
  ASSIGN_OR_RETURN(auto platform, vm_.save_platform_state());
  j["platform"] = b64(platform);
  ASSIGN_OR_RETURN(auto msr_indices, snapshot_msr_indices(kvm_));
  Json vcpus = Json::array();
  for (const auto& v : vcpus_) {
    auto st = v->save_state(msr_indices);
    if (!st) return std::move(st.error()).context("save vCPU " + std::to_string(v->index()));
    vcpus.push_back(b64(*st));
  }
  j["vcpu_state"] = vcpus;
  auto s = serial_->state();
  j["serial"] = {{"ier", s.ier}, {"iir", s.iir}, {"lcr", s.lcr}, {"mcr", s.mcr},
                 {"scr", s.scr}, {"dll", s.dll}, {"dlh", s.dlh}, {"thr_interrupt", s.thr_interrupt}};
  Json transports = Json::array();
  for (const auto& t : transports_) transports.push_back(t->save_state());
  j["transports"] = transports;

  // Both files are written under new names beside their targets and renamed into place
  // (host_files.h: a FIFO, device node or directory at either path is refused before anything
  // is written, and nothing planted at a temporary name is ever opened). Memory first, then the
  // state file: a state file never points at a missing memory file.
  ASSIGN_OR_RETURN(NewFile mem_file, NewFile::create(mem_path, "memory file"));
  ASSIGN_OR_RETURN(NewFile state_file, NewFile::create(state_path, "snapshot state file"));
  TRY_CTX(write_memory(mem_, mem_file.fd()), "memory file " + mem_path);
  TRY(mem_file.commit());
  TRY(state_file.write(j.dump() + "\n"));
  TRY(state_file.commit());
  return ok();
}

Result<std::unique_ptr<Machine>> Machine::restore(const std::string& state_path, const std::string& mem_path,
                                                  int console_out, std::optional<PreparedVm> prepared) {
  // A state file is a few hundred KiB at most (32 vCPUs' registers in base64): fs::read_file's
  // usual cap fits it, and refuses a FIFO, /dev/zero or a huge file before reading.
  auto read = fs::read_file(state_path, fs::kReadLimit);
  if (!read) return std::move(read.error()).context("snapshot state");
  std::string text = std::move(*read);
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error("snapshot state " + state_path + " is not JSON");
  if (j.value("format", "") != kFormat) return Error("snapshot state " + state_path + " is not a strata VM snapshot");
  if (j.value("version", 0) != kVersion) {
    return Error("snapshot state " + state_path + " has version " + std::to_string(j.value("version", 0)) +
                 "; this strata-vmm reads version " + std::to_string(kVersion));
  }
  MachineSpec spec;
  spec.vcpus = j.value("vcpus", 0u);
  uint64_t mem_size = j.value("mem_size", uint64_t{0});
  spec.mem_mib = mem_size >> 20;
  spec.console_out = console_out;
  if (spec.vcpus == 0 || spec.vcpus > 32 || mem_size == 0) return Error("snapshot state " + state_path + " is malformed");
  if (j.contains("devices") && j["devices"].is_array()) {
    for (const auto& d : j["devices"]) spec.devices.push_back(device_from_json(d));
  }
  ASSIGN_OR_RETURN(auto platform, unb64(j["platform"], "platform state"));
  if (!prepared) {
    ASSIGN_OR_RETURN(auto fresh, prepare_vm());
    prepared.emplace(std::move(fresh));
  }
  // The irqchip, PIT and clock go in on a helper thread while this one maps the memory and
  // builds devices and vCPUs: KVM_SET_PIT2 waits for the PIT's kernel thread to run (it flushes
  // its work), 0.1-3 ms here. The helper works on its own dup of the VM fd, so a failed build
  // closing the VM cannot pull the fd from under it; every return waits for it (the future's
  // destructor), and the vCPU states go in after it (SET_LAPIC rescans the IOAPIC's routes).
  auto vm_fd = std::make_shared<UniqueFd>(::fcntl(prepared->vm.fd(), F_DUPFD_CLOEXEC, 0));
  if (!*vm_fd) return Error::sys("dup the VM fd");
  auto platform_done = std::async(std::launch::async, [vm_fd, &platform] {
    return Vm::restore_platform_state(vm_fd->get(), platform);
  });
  ASSIGN_OR_RETURN(auto mem, GuestMemory::map_file(mem_path, mem_size));
  ASSIGN_OR_RETURN(auto m, build(spec, std::move(mem), std::move(prepared), For::kRestore));
  m->cmdline_ = j.value("cmdline", m->cmdline_);
  TRY_CTX(platform_done.get(), "restore the irqchip, PIT and clock");
  const Json& vs = j["vcpu_state"];
  if (!vs.is_array() || vs.size() != m->vcpus_.size()) return Error("snapshot: vCPU states do not match the vCPU count");
  for (size_t i = 0; i < m->vcpus_.size(); ++i) {
    ASSIGN_OR_RETURN(auto blob, unb64(vs[i], "vCPU state"));
    TRY_CTX(m->vcpus_[i]->restore_state(blob), "restore vCPU " + std::to_string(i));
  }
  if (j.contains("serial") && j["serial"].is_object()) {
    const Json& s = j["serial"];
    Serial::State st;
    st.ier = s.value("ier", st.ier);
    st.iir = s.value("iir", st.iir);
    st.lcr = s.value("lcr", st.lcr);
    st.mcr = s.value("mcr", st.mcr);
    st.scr = s.value("scr", st.scr);
    st.dll = s.value("dll", st.dll);
    st.dlh = s.value("dlh", st.dlh);
    st.thr_interrupt = s.value("thr_interrupt", false);
    m->serial_->set_state(st);
  }
  const Json& ts = j["transports"];
  if (ts.is_array()) {
    if (ts.size() != m->transports_.size()) return Error("snapshot: device states do not match the devices");
    for (size_t i = 0; i < ts.size(); ++i) TRY_CTX(m->transports_[i]->restore_state(ts[i]), m->transports_[i]->name());
  }
  return m;
}

}  // namespace strata::vmm
