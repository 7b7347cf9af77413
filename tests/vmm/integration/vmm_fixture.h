// Helpers for the strata-vmm integration tests: run the built monitor (or any command) with a
// time limit and collect what it printed, and find the project's test guests.
#pragma once

#include <string>
#include <vector>

namespace strata::vmm::testing {

struct Run {
  int status = -1;     // exit code, 128+signal, or -1 when killed for the time limit
  std::string out;     // stdout
  std::string err;     // stderr
  bool timed_out = false;
};

// Runs argv (argv[0] a path) with `timeout_s`; stdin is /dev/null.
Run run(const std::vector<std::string>& argv, int timeout_s);

std::string bin(const std::string& name);    // STRATA_BIN_DIR/name
std::string guest(const std::string& name);  // the built test guest, e.g. "hello.elf"
bool have_kvm();
std::string temp_dir();                      // a fresh directory, removed by the caller
std::string shell(const std::string& cmd);   // sh -c cmd, stdout+stderr

}  // namespace strata::vmm::testing
