#include "sim/json_reader.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "sim/error.h"

namespace ppsim::sim {
namespace {

using json = nlohmann::json;

// Builds the DOM as nlohmann's own SAX DOM parser does, keeping the path of the value being read
// so that a repeated key or a too-deep value can be named.
class StrictSax {
 public:
  bool null() { return put(json(nullptr)); }
  bool boolean(bool v) { return put(json(v)); }
  bool number_integer(json::number_integer_t v) { return put(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return put(json(v)); }
  bool number_float(json::number_float_t v, const std::string&) { return put(json(v)); }
  bool string(std::string& v) { return put(json(std::move(v))); }
  bool binary(json::binary_t& v) { return put(json::binary(std::move(v))); }
  bool start_object(std::size_t) { return open(json::object()); }
  bool start_array(std::size_t) { return open(json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(std::string& k) {
    Frame& f = stack_.back();
    if (f.node->contains(k)) {
      error = "duplicate key " + json(k).dump(-1, ' ', false, json::error_handler_t::replace) +
              ": given twice in one object (JSON objects must not repeat a key)";
      error_path = container_path() + "." + k;
      return false;
    }
    f.key = std::move(k);
    return true;
  }

  bool parse_error(std::size_t position, const std::string& token, const nlohmann::detail::exception& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line L, column C: WHAT" or
    // "[json.exception.out_of_range.406] number overflow parsing '1e999'".
    std::string msg = e.what();
    if (auto p = msg.find("] "); p != std::string::npos) msg = msg.substr(p + 2);
    if (msg.rfind("parse error", 0) == 0) {
      if (auto p = msg.find(": "); p != std::string::npos) msg = msg.substr(p + 2);
    } else if (msg.rfind("number overflow", 0) == 0) {
      msg += " (expected a finite number)";
      position = position - std::min(position, token.size()) + 1;  // reported after the number: name its start
    }
    malformed = msg;
    malformed_at = position;
    return false;
  }

  json result;
  std::string error, error_path, malformed;
  std::size_t malformed_at = 0;

 private:
  struct Frame {
    json* node;       // the open object or array
    std::string key;  // objects: the key whose value is being read
  };

  // ".key" or "[i]": how a path continues into a child of `f` (an array's last element, or the
  // one after it when `next`).
  static void append_child(std::string& p, const Frame& f, bool next) {
    if (f.node->is_object()) {
      p += '.';
      p += f.key;
    } else {
      p += '[';
      p += std::to_string(f.node->size() - (next ? 0 : 1));
      p += ']';
    }
  }
  // Path of the innermost open container.
  std::string container_path() const {
    std::string p = "$";
    for (std::size_t i = 0; i + 1 < stack_.size(); ++i) append_child(p, stack_[i], false);
    return p;
  }

  json* place(json&& v) {
    if (stack_.empty()) {
      result = std::move(v);
      return &result;
    }
    Frame& f = stack_.back();
    if (f.node->is_object()) return &((*f.node)[f.key] = std::move(v));
    f.node->push_back(std::move(v));
    return &f.node->back();
  }
  bool put(json&& v) {
    place(std::move(v));
    return true;
  }
  bool open(json&& container) {
    if (static_cast<int>(stack_.size()) >= kMaxJsonDepth) {
      error = "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
      error_path = container_path();
      append_child(error_path, stack_.back(), true);
      return false;
    }
    stack_.push_back({place(std::move(container)), {}});
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }

  std::vector<Frame> stack_;
};

}  // namespace

json parse_json_text(std::string_view text, const std::string& file) {
  StrictSax sax;
  if (json::sax_parse(text.begin(), text.end(), &sax, json::input_format_t::json, true, false))
    return std::move(sax.result);
  if (sax.malformed.empty()) throw ScenarioError(file, sax.error_path, sax.error);
  // nlohmann reports the byte after the one it stopped at; count lines and columns to that byte.
  std::size_t line = 1, col = 1;
  for (std::size_t i = 0; i + 1 < sax.malformed_at && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  throw ScenarioError(file, "", "malformed JSON at line " + std::to_string(line) + ", column " + std::to_string(col) +
                                    ": " + sax.malformed);
}

std::string json_brief(const json& v, std::size_t max) {
  std::string d = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (d.size() > max) d = d.substr(0, max > 3 ? max - 3 : 0) + "...";
  return d;
}

json load_json_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw ScenarioError(path, "", "is a directory, expected a JSON file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ScenarioError(path, "", "cannot open file");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw ScenarioError(path, "", "cannot read file");
  return parse_json_text(ss.str(), path);
}

std::string optional_string(const json& j, const char* key, const std::string& file, const std::string& path,
                            const std::string& absent, const std::string& what) {
  const auto it = j.find(key);
  if (it == j.end()) return absent;
  if (!it->is_string())
    throw ScenarioError(file, path + "." + key, "expected a string" + what + ", got " + json_brief(*it));
  return it->get<std::string>();
}

}  // namespace ppsim::sim
