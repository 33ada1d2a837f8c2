// Errors a user can act on. ScenarioError names the file, the JSON path and what was expected;
// the CLI turns it into one line and exit code 2.
#pragma once
#include <stdexcept>
#include <string>
#include <string_view>

namespace ppsim::sim {

class ScenarioError : public std::runtime_error {
 public:
  // The message is "FILE: at PATH: WHAT" made printable (see printable()), so it is always one
  // line of valid UTF-8 whatever bytes the input held.
  ScenarioError(const std::string& file, const std::string& json_path, const std::string& what)
      : std::runtime_error(format(file, json_path, what)), file_(file), path_(json_path) {}
  const std::string& file() const { return file_; }
  const std::string& json_path() const { return path_; }

 private:
  static std::string format(const std::string& file, const std::string& path, const std::string& what);
  std::string file_, path_;
};

// `s` with control characters and bytes that are not valid UTF-8 written as \xNN (valid UTF-8
// characters are kept).
std::string printable(std::string_view s);

}  // namespace ppsim::sim
