// strata healthcheck run CONTAINER: runs the container's health check once and records it (what
// strata-monitor's timer runs every interval; podman's command of the same name). Exit code 0
// when healthy, 1 (printing the status) when starting or unhealthy, 125 on an error.
#include <cstdio>

#include "cli/strata_commands.h"
#include "sandbox/health.h"
#include "sandbox/record.h"

namespace strata::cli {

void add_healthcheck_commands(CLI::App& app, Globals& g) {
  CLI::App* hc = app.add_subcommand("healthcheck", "Container health checks");
  hc->require_subcommand(1);
  auto* key = new std::string();
  CLI::App* run = hc->add_subcommand("run", "Run a container's health check once");
  run->add_option("container", *key, "Container name or id")->required();
  run->callback([&g, key] {
    if (Status st = guard_self_for(g, {*key}); !st.ok()) {
      g.exit_code = fail(st.error());
      return;
    }
    g.exit_code = with_container(g, *key, [](const sandbox::ContainerStore& s, const std::string& id) {
      auto state = sandbox::run_health_check(s, id);
      if (!state) return fail(state.error());
      if (state->status == "healthy") return 0;
      std::printf("%s\n", state->status.c_str());
      return 1;
    });
  });
}

}  // namespace strata::cli
