// The parameter registry: every scenario knob is declared once, with type, unit, default, bounds
// and a one-line doc. The same registry validates scenario JSON, fills defaults, echoes the
// resolved values into results.json, and is what `ppsim params` prints.
//
// Scenario JSON is nested by section ({"page_pool": {"pool_size_pages": 256}}); a parameter's
// path is the dotted form ("page_pool.pool_size_pages"). A numeric value is in the unit named by
// the parameter; a string "<number> <unit>" is converted if the unit has the same dimension.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "sim/json_reader.h"

namespace ppsim::sim {

using json = nlohmann::json;

enum class ParamKind { kInt, kFloat, kBool, kString, kEnum };

struct ParamSpec {
  std::string path;  // dotted, e.g. "page_pool.pool_size_pages"
  ParamKind kind = ParamKind::kInt;
  std::string unit;  // "" for plain numbers/flags; "ns", "bytes", "pages", …
  json default_value;
  std::string doc;   // one line
  std::string source;  // where the default comes from (paper, kernel constant), may be empty
  std::optional<double> min, max;  // inclusive bounds on the value in `unit`
  std::vector<std::string> choices;  // kEnum
  // Extra check on the converted value; returns "" when fine, else what was expected.
  std::function<std::string(const json&)> check;
};

using ParamValue = std::variant<std::int64_t, double, bool, std::string>;

class Params {
 public:
  std::int64_t get_int(const std::string& path) const;
  double get_double(const std::string& path) const;  // ints widen
  bool get_bool(const std::string& path) const;
  const std::string& get_string(const std::string& path) const;
  bool was_set(const std::string& path) const { return explicit_.count(path) != 0; }
  const std::string& file() const { return file_; }
  // {"section": {"name": value}} with every parameter, defaults included.
  json to_json() const;

 private:
  friend class ParamRegistry;
  const ParamValue& at(const std::string& path) const;
  std::map<std::string, ParamValue> values_;
  std::map<std::string, bool> explicit_;
  std::string file_;
};

class ParamRegistry {
 public:
  // Adds a parameter; a second add of the same path with an identical spec is ignored.
  void add(ParamSpec spec);
  // Convenience builders.
  void add_int(const std::string& path, const std::string& unit, std::int64_t def, const std::string& doc,
               std::optional<double> min = std::nullopt, std::optional<double> max = std::nullopt,
               const std::string& source = "");
  void add_float(const std::string& path, const std::string& unit, double def, const std::string& doc,
                 std::optional<double> min = std::nullopt, std::optional<double> max = std::nullopt,
                 const std::string& source = "");
  void add_bool(const std::string& path, bool def, const std::string& doc);
  void add_string(const std::string& path, const std::string& def, const std::string& doc);
  void add_enum(const std::string& path, const std::string& def, std::vector<std::string> choices,
                const std::string& doc);

  // Validates `scenario` (unknown keys, types, units, bounds) and fills defaults.
  // Throws ScenarioError naming `file` and the JSON path.
  Params resolve(const json& scenario, const std::string& file) const;
  const std::map<std::string, ParamSpec>& specs() const { return specs_; }
  json describe() const;  // for `ppsim params`

 private:
  ParamValue convert(const ParamSpec& spec, const json& v, const std::string& file) const;
  std::map<std::string, ParamSpec> specs_;
  std::map<std::string, bool> sections_;  // every dotted prefix that is an object
};

// "$.a.b" from "a.b".
std::string json_path(const std::string& dotted);

}  // namespace ppsim::sim
