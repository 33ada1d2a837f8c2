#include "sim/params.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "sim/error.h"
#include "sim/units.h"

namespace ppsim::sim {
namespace {

const char* kind_name(ParamKind k) {
  switch (k) {
    case ParamKind::kInt: return "integer";
    case ParamKind::kFloat: return "number";
    case ParamKind::kBool: return "boolean";
    case ParamKind::kString: return "string";
    case ParamKind::kEnum: return "one of";
  }
  return "?";
}

constexpr double kTwo63 = 9223372036854775808.0;  // 2^63: int64 values are below it

std::string fmt_num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// A bound as the user should read it: integer bounds exactly, the int64 limit by name.
std::string fmt_bound(const ParamSpec& s, double v) {
  if (s.kind != ParamKind::kInt || std::fabs(v) >= 1e21) return fmt_num(v);
  if (v >= kTwo63) return "9223372036854775807 (2^63-1)";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

// Edit distance, for "did you mean" on unknown keys.
std::size_t distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string expected_of(const ParamSpec& s) {
  std::string e;
  if (s.kind == ParamKind::kEnum) {
    e = "one of";
    for (std::size_t i = 0; i < s.choices.size(); ++i) e += (i ? ", \"" : " \"") + s.choices[i] + "\"";
    return e;
  }
  e = std::string(s.kind == ParamKind::kInt ? "an integer" : s.kind == ParamKind::kFloat ? "a number"
                  : s.kind == ParamKind::kBool ? "true or false" : "a string");
  if (!s.unit.empty()) e += " in " + s.unit;
  if (s.min && s.max) e += " from " + fmt_bound(s, *s.min) + " to " + fmt_bound(s, *s.max);
  else if (s.min) e += " >= " + fmt_bound(s, *s.min);
  else if (s.max) e += " <= " + fmt_bound(s, *s.max);
  return e;
}

std::string got_of(const json& v) { return json_brief(v); }

}  // namespace

std::string json_path(const std::string& dotted) { return dotted.empty() ? "$" : "$." + dotted; }

void ParamRegistry::add(ParamSpec spec) {
  if (specs_.count(spec.path)) return;
  if (sections_.count(spec.path)) throw std::logic_error("param path is a section: " + spec.path);
  for (auto pos = spec.path.find('.'); pos != std::string::npos; pos = spec.path.find('.', pos + 1))
    sections_[spec.path.substr(0, pos)] = true;
  specs_.emplace(spec.path, std::move(spec));
}

void ParamRegistry::add_int(const std::string& path, const std::string& unit, std::int64_t def,
                            const std::string& doc, std::optional<double> min, std::optional<double> max,
                            const std::string& source) {
  ParamSpec s;
  s.path = path; s.kind = ParamKind::kInt; s.unit = unit; s.default_value = def; s.doc = doc;
  s.min = min; s.max = max; s.source = source;
  add(std::move(s));
}

void ParamRegistry::add_float(const std::string& path, const std::string& unit, double def,
                              const std::string& doc, std::optional<double> min, std::optional<double> max,
                              const std::string& source) {
  ParamSpec s;
  s.path = path; s.kind = ParamKind::kFloat; s.unit = unit; s.default_value = def; s.doc = doc;
  s.min = min; s.max = max; s.source = source;
  add(std::move(s));
}

void ParamRegistry::add_bool(const std::string& path, bool def, const std::string& doc) {
  ParamSpec s;
  s.path = path; s.kind = ParamKind::kBool; s.default_value = def; s.doc = doc;
  add(std::move(s));
}

void ParamRegistry::add_string(const std::string& path, const std::string& def, const std::string& doc) {
  ParamSpec s;
  s.path = path; s.kind = ParamKind::kString; s.default_value = def; s.doc = doc;
  add(std::move(s));
}

void ParamRegistry::add_enum(const std::string& path, const std::string& def, std::vector<std::string> choices,
                             const std::string& doc) {
  ParamSpec s;
  s.path = path; s.kind = ParamKind::kEnum; s.default_value = def; s.doc = doc; s.choices = std::move(choices);
  add(std::move(s));
}

ParamValue ParamRegistry::convert(const ParamSpec& s, const json& v, const std::string& file) const {
  const std::string where = json_path(s.path);
  auto fail = [&](const std::string& extra = "") -> ScenarioError {
    return ScenarioError(file, where, "expected " + expected_of(s) + ", got " + got_of(v) + extra);
  };
  switch (s.kind) {
    case ParamKind::kBool:
      if (!v.is_boolean()) throw fail();
      return v.get<bool>();
    case ParamKind::kString:
      if (!v.is_string()) throw fail();
      return v.get<std::string>();
    case ParamKind::kEnum: {
      if (!v.is_string()) throw fail();
      const auto str = v.get<std::string>();
      for (const auto& c : s.choices)
        if (c == str) return str;
      throw fail();
    }
    case ParamKind::kInt:
    case ParamKind::kFloat: break;
  }
  double x = 0;
  // An integer literal is kept exactly: going through double would round values near 2^63 (and
  // casting 2^63 back to int64 is undefined).
  std::optional<std::int64_t> exact;
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u <= static_cast<std::uint64_t>(INT64_MAX)) exact = static_cast<std::int64_t>(u);
    x = static_cast<double>(u);
  } else if (v.is_number_integer()) {
    exact = v.get<std::int64_t>();
    x = static_cast<double>(*exact);
  } else if (v.is_number()) {
    x = v.get<double>();
  } else if (v.is_string()) {
    // "<number> <unit>"
    std::istringstream is(v.get<std::string>());
    std::string unit, rest;
    if (!(is >> x) || !(is >> unit) || (is >> rest)) throw fail(" (a string must be \"<number> <unit>\")");
    const auto want = lookup_unit(s.unit);
    const auto have = lookup_unit(unit);
    if (unit == s.unit) {
      // same unit: no conversion
    } else if (want && have && want->dim == have->dim) {
      x = x * have->factor / want->factor;
    } else {
      std::string exp = want ? units_of(want->dim) : s.unit.empty() ? std::string("no unit") : s.unit;
      throw ScenarioError(file, where,
                          "wrong unit \"" + unit + "\": expected " +
                              (want ? std::string(dimension_name(want->dim)) + " (" + exp + ")" : exp));
    }
  } else {
    throw fail();
  }
  if (!std::isfinite(x)) throw fail();
  if (s.min && x < *s.min) throw fail();
  if (s.max && x > *s.max) throw fail();
  if (s.kind == ParamKind::kInt) {
    if (exact) return *exact;
    if (x != std::floor(x) || x < -kTwo63 || x >= kTwo63) throw fail();
    return static_cast<std::int64_t>(x);
  }
  return x;
}

Params ParamRegistry::resolve(const json& scenario, const std::string& file) const {
  Params p;
  p.file_ = file;
  if (!scenario.is_object()) throw ScenarioError(file, "$", "expected a JSON object, got " + got_of(scenario));
  // Walk the user's JSON first: every key must be a section or a parameter.
  std::function<void(const json&, const std::string&)> walk = [&](const json& obj, const std::string& prefix) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      const std::string path = prefix.empty() ? it.key() : prefix + "." + it.key();
      if (sections_.count(path)) {
        if (!it.value().is_object())
          throw ScenarioError(file, json_path(path), "expected an object (a section), got " + got_of(it.value()));
        walk(it.value(), path);
        continue;
      }
      auto spec = specs_.find(path);
      if (spec == specs_.end()) {
        // Suggest the closest known key at the same level.
        std::string best;
        std::size_t best_d = 4;
        auto consider = [&](const std::string& full) {
          auto dot = full.rfind('.');
          std::string parent = dot == std::string::npos ? "" : full.substr(0, dot);
          if (parent != prefix) return;
          std::string leaf = dot == std::string::npos ? full : full.substr(dot + 1);
          auto d = distance(leaf, it.key());
          if (d < best_d) { best_d = d; best = leaf; }
        };
        for (const auto& kv : specs_) consider(kv.first);
        for (const auto& kv : sections_) consider(kv.first);
        throw ScenarioError(file, json_path(path),
                            "unknown key \"" + it.key() + "\"" +
                                (best.empty() ? std::string(" (see `ppsim params`)") : " (did you mean \"" + best + "\"?)"));
      }
      p.values_[path] = convert(spec->second, it.value(), file);
      p.explicit_[path] = true;
      if (spec->second.check) {
        const std::string err = spec->second.check(it.value());
        if (!err.empty()) throw ScenarioError(file, json_path(path), err);
      }
    }
  };
  walk(scenario, "");
  for (const auto& [path, spec] : specs_)
    if (!p.values_.count(path)) p.values_[path] = convert(spec, spec.default_value, "<built-in default>");
  return p;
}

json ParamRegistry::describe() const {
  json out = json::array();
  for (const auto& [path, s] : specs_) {
    json j = {{"path", path}, {"type", s.kind == ParamKind::kEnum ? "enum" : kind_name(s.kind)},
              {"unit", s.unit}, {"default", s.default_value}, {"doc", s.doc}};
    if (s.min) j["min"] = *s.min;
    if (s.max) j["max"] = *s.max;
    if (!s.choices.empty()) j["choices"] = s.choices;
    if (!s.source.empty()) j["source"] = s.source;
    out.push_back(j);
  }
  return out;
}

const ParamValue& Params::at(const std::string& path) const {
  auto it = values_.find(path);
  if (it == values_.end()) throw std::logic_error("ppsim: parameter not registered: " + path);
  return it->second;
}

std::int64_t Params::get_int(const std::string& path) const {
  const auto& v = at(path);
  if (auto p = std::get_if<std::int64_t>(&v)) return *p;
  throw std::logic_error("ppsim: parameter is not an integer: " + path);
}

double Params::get_double(const std::string& path) const {
  const auto& v = at(path);
  if (auto p = std::get_if<double>(&v)) return *p;
  if (auto p = std::get_if<std::int64_t>(&v)) return static_cast<double>(*p);
  throw std::logic_error("ppsim: parameter is not a number: " + path);
}

bool Params::get_bool(const std::string& path) const {
  const auto& v = at(path);
  if (auto p = std::get_if<bool>(&v)) return *p;
  throw std::logic_error("ppsim: parameter is not a boolean: " + path);
}

const std::string& Params::get_string(const std::string& path) const {
  const auto& v = at(path);
  if (auto p = std::get_if<std::string>(&v)) return *p;
  throw std::logic_error("ppsim: parameter is not a string: " + path);
}

json Params::to_json() const {
  json out = json::object();
  for (const auto& [path, v] : values_) {
    json* node = &out;
    std::size_t start = 0;
    for (auto dot = path.find('.'); dot != std::string::npos; dot = path.find('.', start)) {
      node = &(*node)[path.substr(start, dot - start)];
      start = dot + 1;
    }
    json& leaf = (*node)[path.substr(start)];
    std::visit([&](const auto& x) { leaf = x; }, v);
  }
  return out;
}

}  // namespace ppsim::sim
