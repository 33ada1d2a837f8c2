// Errors a user can act on. ScenarioError names the file, the JSON path and what was expected;
// the CLI turns it into one line and exit code 2.
#pragma once
#include <stdexcept>
#include <string>

namespace ppsim::sim {

class ScenarioError : public std::runtime_error {
 public:
  ScenarioError(const std::string& file, const std::string& json_path, const std::string& what)
      : std::runtime_error(format(file, json_path, what)), file_(file), path_(json_path) {}
  const std::string& file() const { return file_; }
  const std::string& json_path() const { return path_; }

 private:
  static std::string format(const std::string& file, const std::string& path, const std::string& what) {
    std::string s = file.empty() ? std::string("<scenario>") : file;
    if (!path.empty()) s += ": at " + path;
    return s + ": " + what;
  }
  std::string file_, path_;
};

}  // namespace ppsim::sim
