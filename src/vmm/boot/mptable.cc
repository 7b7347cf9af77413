#include "vmm/boot/mptable.h"

#include <cstring>
#include <vector>

#include "vmm/boot/boot.h"
#include "vmm/guest_memory.h"

namespace strata::vmm {

namespace {

uint8_t checksum(const uint8_t* p, size_t n) {
  uint8_t sum = 0;
  for (size_t i = 0; i < n; ++i) sum = static_cast<uint8_t>(sum + p[i]);
  return static_cast<uint8_t>(-sum);
}

class Bytes {
 public:
  template <class T>
  void put(T v) {
    uint8_t b[sizeof v];
    std::memcpy(b, &v, sizeof v);
    out.insert(out.end(), b, b + sizeof v);
  }
  void str(const char* s, size_t n) {
    for (size_t i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(*s ? *s++ : ' '));
  }
  std::vector<uint8_t> out;
};

}  // namespace

Status write_mptable(const GuestMemory& mem, uint32_t num_cpus) {
  if (num_cpus == 0 || num_cpus > 254) return Error("MP table: " + std::to_string(num_cpus) + " CPUs");
  const uint64_t fp_addr = kEbdaStart;
  const uint64_t table_addr = fp_addr + 16;
  const uint8_t ioapic_id = static_cast<uint8_t>(num_cpus + 1);

  Bytes entries;
  uint16_t count = 0;
  for (uint32_t i = 0; i < num_cpus; ++i) {  // processors
    entries.put<uint8_t>(0);
    entries.put<uint8_t>(static_cast<uint8_t>(i));   // local APIC id
    entries.put<uint8_t>(0x14);                      // local APIC version
    entries.put<uint8_t>(i == 0 ? 0x3 : 0x1);        // enabled | bootstrap
    entries.put<uint32_t>(0x600);                    // CPU signature (family 6)
    entries.put<uint32_t>(0x201);                    // features: FPU, APIC
    entries.put<uint64_t>(0);
    ++count;
  }
  entries.put<uint8_t>(1);  // bus 0: ISA
  entries.put<uint8_t>(0);
  entries.str("ISA", 6);
  ++count;
  entries.put<uint8_t>(2);  // the IOAPIC
  entries.put<uint8_t>(ioapic_id);
  entries.put<uint8_t>(0x11);
  entries.put<uint8_t>(1);  // enabled
  entries.put<uint32_t>(static_cast<uint32_t>(kIoapicAddr));
  ++count;
  for (uint32_t irq = 0; irq < kIoapicPins; ++irq) {  // ISA IRQ n -> IOAPIC pin n
    entries.put<uint8_t>(3);
    entries.put<uint8_t>(0);  // INT
    entries.put<uint16_t>(0);  // conforming polarity and trigger
    entries.put<uint8_t>(0);   // source bus
    entries.put<uint8_t>(static_cast<uint8_t>(irq));
    entries.put<uint8_t>(ioapic_id);
    entries.put<uint8_t>(static_cast<uint8_t>(irq));
    ++count;
  }
  for (auto [type, lint] : {std::pair<uint8_t, uint8_t>{3, 0}, {1, 1}}) {  // ExtINT -> LINT0, NMI -> LINT1
    entries.put<uint8_t>(4);
    entries.put<uint8_t>(type);
    entries.put<uint16_t>(0);
    entries.put<uint8_t>(0);
    entries.put<uint8_t>(0);
    entries.put<uint8_t>(0xff);  // every local APIC
    entries.put<uint8_t>(lint);
    ++count;
  }

  Bytes table;
  table.str("PCMP", 4);
  table.put<uint16_t>(static_cast<uint16_t>(44 + entries.out.size()));
  table.put<uint8_t>(4);  // spec revision 1.4
  table.put<uint8_t>(0);  // checksum, below
  table.str("STRATA", 8);
  table.str("STRATA-VMM", 12);
  table.put<uint32_t>(0);  // OEM table
  table.put<uint16_t>(0);
  table.put<uint16_t>(count);
  table.put<uint32_t>(static_cast<uint32_t>(kLapicAddr));
  table.put<uint16_t>(0);  // extended table length
  table.put<uint8_t>(0);
  table.put<uint8_t>(0);
  table.out.insert(table.out.end(), entries.out.begin(), entries.out.end());
  table.out[7] = checksum(table.out.data(), table.out.size());

  Bytes fp;
  fp.str("_MP_", 4);
  fp.put<uint32_t>(static_cast<uint32_t>(table_addr));
  fp.put<uint8_t>(1);  // length in 16-byte units
  fp.put<uint8_t>(4);
  fp.put<uint8_t>(0);  // checksum, below
  fp.put<uint8_t>(0);  // feature 1: a configuration table is present
  fp.put<uint32_t>(0);
  fp.out[10] = checksum(fp.out.data(), fp.out.size());

  if (table_addr + table.out.size() > kHighMemStart) return Error("MP table does not fit in the EBDA");
  if (!mem.write(fp_addr, fp.out.data(), fp.out.size()) || !mem.write(table_addr, table.out.data(), table.out.size())) {
    return Error("write the MP table: guest memory too small");
  }
  return ok();
}

}  // namespace strata::vmm
