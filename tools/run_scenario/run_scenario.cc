// ppsim_run_scenario FILE [--seed N] [--out RESULTS.json]: runs one scenario with no Python in the
// way, so the sanitizer build (make sanitize) can run every shipped scenario under ASan and
// UBSan. Prints one line; exit codes as `ppsim run`: 0 ok, 1 an invariant was violated, 2 bad
// input, 4 a budget stopped the run.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "models/world/world.h"
#include "sim/error.h"
#include "sim/json_reader.h"

namespace {

int usage(const char* why) {
  std::fprintf(stderr, "ppsim_run_scenario: %s (usage: ppsim_run_scenario FILE [--seed N] [--out RESULTS.json])\n", why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string file, out;
  ppsim::world::RunOptions opts;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--seed" || a == "--out") && i + 1 < argc) {
      const std::string v = argv[++i];
      if (a == "--out") {
        out = v;
        continue;
      }
      char* end = nullptr;
      errno = 0;
      const unsigned long long s = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || v[0] == '-' || *end || errno || s > 9223372036854775807ull)
        return usage(("--seed: expected an integer from 0 to 9223372036854775807 (2^63-1), got '" +
                      ppsim::sim::printable(v) + "'").c_str());
      opts.seed = s;
    } else if (file.empty() && !a.empty() && a[0] != '-') {
      file = a;
    } else {
      return usage(("unexpected argument '" + ppsim::sim::printable(a) + "'").c_str());
    }
  }
  if (file.empty()) return usage("no scenario file");
  try {
    const auto res = ppsim::world::run(ppsim::sim::load_json_file(file), file, opts);
    const std::string text = res.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    if (!out.empty()) {
      std::ofstream f(out, std::ios::binary);
      if (!(f << text)) return usage(("--out " + ppsim::sim::printable(out) + ": cannot write").c_str());
    }
    const auto& inv = res.at("invariants");
    const std::uint64_t events = res.at("stats").at("sim.events_dispatched").at("value").get<std::uint64_t>();
    if (!res.at("run_limit").is_null()) {
      std::printf("%s: stopped early: %s\n", ppsim::sim::printable(file).c_str(),
                  res.at("run_limit").at("message").get<std::string>().c_str());
      return 4;
    }
    std::printf("%s: %s, %llu events, %llu checks\n", ppsim::sim::printable(file).c_str(),
                inv.at("ok").get<bool>() ? "invariants ok" : "INVARIANT VIOLATED", static_cast<unsigned long long>(events),
                static_cast<unsigned long long>(inv.at("checks").get<std::uint64_t>()));
    return inv.at("ok").get<bool>() ? 0 : 1;
  } catch (const ppsim::sim::ScenarioError& e) {
    std::fprintf(stderr, "ppsim_run_scenario: %s\n", e.what());
    return 2;
  }
}
