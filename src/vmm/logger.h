// Where strata-vmm's log goes (--log-path, PUT /logger) and what it could not write there.
// The destination is opened with open_output() (host_files.h), as Firecracker opens its log: a
// FIFO, the usual destination in jailer setups, opens without a reader and never blocks a
// writer; a line it has no room for is dropped and counted (Firecracker's
// logger.missed_log_count), since a log nobody reads must not stop the API thread or a vCPU.
#pragma once

#include <cstdint>
#include <string>

#include "base/error.h"

namespace strata::vmm {

// Sends the log to `path` (empty: stderr) at debug level when `debug`, else warnings and errors.
// On error nothing changes. strata-vmm logs through the "vmm" logger of base/log.h only.
Status configure_log(const std::string& path, bool debug);

// Lines dropped since the start because the destination was full.
uint64_t missed_log_lines();

}  // namespace strata::vmm
