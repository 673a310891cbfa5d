// Runs the data-driven golden tests in testdata/*.test (format in README.md).
//
// RIFFLEDB_UPDATE_GOLDEN=1 rewrites the expected blocks with the actual results: review
// the diff before committing it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "riffledb/expr/expr_test_util_internal.h"
#include "riffledb/expr/parser.h"
#include "riffledb/testing/testing.h"

namespace riffledb {
namespace {

namespace fs = std::filesystem;

fs::path TestDataDir() {
  if (const char* dir = std::getenv("RIFFLEDB_EXPR_TESTDATA")) return dir;
  return fs::path(__FILE__).parent_path() / "testdata";
}

// Arrow prints some options (value sets) over several lines: make them one line.
std::string OneLine(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') {
      while (i + 1 < text.size() && text[i + 1] == ' ') ++i;
      out += ' ';
    } else {
      out += text[i];
    }
  }
  return out;
}

struct Record {
  int line = 0;                                 // of the directive
  std::string directive;                        // parse | bind | eval | project
  std::string input;                            // may span lines
  std::string expected;                         // may span lines
  size_t expected_begin = 0, expected_end = 0;  // line indexes, for rewriting
};

std::vector<std::string> ReadLines(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::vector<Record> ParseRecords(const std::vector<std::string>& lines,
                                 std::string* error) {
  std::vector<Record> records;
  size_t i = 0;
  while (i < lines.size()) {
    if (lines[i].empty() || lines[i][0] == '#') {
      ++i;
      continue;
    }
    Record r;
    r.line = static_cast<int>(i + 1);
    r.directive = lines[i++];
    if (r.directive != "parse" && r.directive != "bind" && r.directive != "eval" &&
        r.directive != "project") {
      *error =
          "line " + std::to_string(r.line) + ": unknown directive '" + r.directive + "'";
      return {};
    }
    bool first = true;
    while (i < lines.size() && lines[i] != "----") {
      r.input += (first ? "" : "\n") + lines[i++];
      first = false;
    }
    if (i == lines.size()) {
      *error = "line " + std::to_string(r.line) + ": record without '----'";
      return {};
    }
    ++i;
    r.expected_begin = i;
    first = true;
    while (i < lines.size() && !lines[i].empty()) {
      r.expected += (first ? "" : "\n") + lines[i++];
      first = false;
    }
    r.expected_end = i;
    records.push_back(std::move(r));
  }
  return records;
}

// Runs one record and returns its result in the golden format.
std::string RunRecord(const Record& r, const arrow::RecordBatch& batch) {
  auto parsed = ParseExpression(r.input);
  if (!parsed.ok()) return "error: " + parsed.status().message();
  if (r.directive == "parse") return OneLine(parsed->ToString());
  auto bound = BindExpression(*parsed, *batch.schema());
  if (!bound.ok()) return "error: " + bound.status().message();
  if (r.directive == "bind") return bound->type() ? bound->type()->ToString() : "untyped";
  if (r.directive == "eval") {
    auto selected = EvaluateFilter(*bound, batch);
    if (!selected.ok()) return "error: " + selected.status().message();
    std::string out;
    for (int64_t i = 0; i < (*selected)->length(); ++i) {
      if ((*selected)->IsNull(i)) return "error: the filter result has nulls";
      if ((*selected)->Value(i)) out += (out.empty() ? "" : ", ") + std::to_string(i);
    }
    return out.empty() ? "none" : out;
  }
  auto values = EvaluateExpression(*bound, batch);
  if (!values.ok()) return "error: " + values.status().message();
  std::string out;
  for (int64_t i = 0; i < (*values)->length(); ++i) {
    if (i > 0) out += ", ";
    auto scalar = (*values)->GetScalar(i);
    out += !scalar.ok() ? "?" : (*scalar)->is_valid ? (*scalar)->ToString() : "null";
  }
  return out;
}

bool Matches(const std::string& expected, const std::string& actual) {
  static constexpr std::string_view kError = "error: ";
  if (expected.rfind(kError, 0) == 0) {
    return actual.rfind(kError, 0) == 0 &&
           actual.find(expected.substr(kError.size())) != std::string::npos;
  }
  return expected == actual;
}

TEST(ExprGolden, AllFiles) {
  ASSERT_OK_AND_ASSIGN(auto batch, internal::MakeExprTestBatch());
  const fs::path dir = TestDataDir();
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  const bool update = std::getenv("RIFFLEDB_UPDATE_GOLDEN") != nullptr;
  int files = 0;
  int total = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".test") continue;
    ++files;
    std::vector<std::string> lines = ReadLines(entry.path());
    std::string error;
    std::vector<Record> records = ParseRecords(lines, &error);
    ASSERT_TRUE(error.empty()) << entry.path() << ": " << error;
    EXPECT_FALSE(records.empty()) << entry.path();
    std::vector<std::string> rewritten;
    size_t copied = 0;
    for (const Record& r : records) {
      ++total;
      const std::string actual = RunRecord(r, *batch);
      if (update) {
        rewritten.insert(rewritten.end(), lines.begin() + copied,
                         lines.begin() + r.expected_begin);
        // Keep error substrings that still match: they are chosen by hand.
        rewritten.push_back(Matches(r.expected, actual) ? r.expected : actual);
        copied = r.expected_end;
        continue;
      }
      EXPECT_TRUE(Matches(r.expected, actual))
          << entry.path().filename().string() << ":" << r.line << ": " << r.directive
          << "\n  input:    " << r.input << "\n  expected: " << r.expected
          << "\n  actual:   " << actual;
    }
    if (update) {
      rewritten.insert(rewritten.end(), lines.begin() + copied, lines.end());
      std::ofstream out(entry.path());
      for (const auto& line : rewritten) out << line << "\n";
    }
  }
  EXPECT_GT(files, 0);
  std::printf("expr golden: %d records in %d files\n", total, files);
}

}  // namespace
}  // namespace riffledb
