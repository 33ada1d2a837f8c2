// JSON text a user hands ppsim (scenarios, machine profiles), read strictly. Unlike
// nlohmann::json::parse, a key given twice in one object is an error (nlohmann keeps one of them
// silently), and so is nesting deeper than kMaxJsonDepth (the DOM and dump() recurse). Every
// error is a ScenarioError naming the file and either the line and column (malformed text) or the
// JSON path (a repeated key, too deep).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace ppsim::sim {

constexpr int kMaxJsonDepth = 64;

nlohmann::json parse_json_text(std::string_view text, const std::string& file);
// Reads `path` and parses it as above; "cannot open file" when it cannot be read.
nlohmann::json load_json_file(const std::string& path);
// A value as an error message quotes it: compact JSON, at most `max` characters ("..." after),
// never throwing (strings that are not UTF-8 are shown with U+FFFD).
std::string json_brief(const nlohmann::json& v, std::size_t max = 40);
// The string at key `key` of object `j` (at JSON path `path` in `file`), or `absent` when there is
// none; anything but a string is a ScenarioError: "expected a string<what>, got ...".
std::string optional_string(const nlohmann::json& j, const char* key, const std::string& file, const std::string& path,
                            const std::string& absent = "", const std::string& what = "");

}  // namespace ppsim::sim
