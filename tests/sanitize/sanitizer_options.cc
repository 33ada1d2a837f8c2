// Linked into every executable of a sanitizer build (PPSIM_SANITIZE), so that a test, a fuzz target
// or ppsim_run_scenario run by hand behaves as under ctest: stop at the first report, with a stack.
// The runtimes call these hooks at start-up; environment variables still override them.

extern "C" const char* __asan_default_options() {
  return "halt_on_error=1:abort_on_error=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1:"
         "detect_stack_use_after_return=1";
}

extern "C" const char* __ubsan_default_options() { return "halt_on_error=1:print_stacktrace=1"; }

// sim::Kernel gives each run a fresh SystemC context and never deletes the old one: SystemC 2.3
// cannot tear a context down safely (sim/kernel.cc). What a context owns is leaked on purpose, a
// few KiB per run: its own allocations (inside libsystemc, whose frames the unwinder cannot
// follow further) and the method processes ppsim spawns into it.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:libsystemc\n"
         "leak:ppsim::sim::Process::Process\n";
}
