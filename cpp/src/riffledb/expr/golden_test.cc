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
#include "riffledb/expr/projection.h"
#include "riffledb/testing/testing.h"

namespace riffledb {
namespace {

namespace fs = std::filesystem;

fs::path TestDataDir() {
  if (const char* dir = std::getenv("RIFFLEDB_EXPR_TESTDATA")) return dir;
  return fs::path(RIFFLEDB_COMPONENT_DIR) / "testdata";
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
  int line = 0;           // of the directive
  std::string directive;  // parse | bind | eval | project | select | where
  std::string input;      // may span lines
  std::string expected;   // may span lines
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
        r.directive != "project" && r.directive != "select" && r.directive != "where") {
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

std::string FormatValues(const arrow::Array& values) {
  std::string out;
  for (int64_t i = 0; i < values.length(); ++i) {
    if (i > 0) out += ", ";
    auto scalar = values.GetScalar(i);
    out += !scalar.ok() ? "?" : (*scalar)->is_valid ? (*scalar)->ToString() : "null";
  }
  return out;
}

// The test table as a table schema: without `_rowid` and `_rowoffset`, which a
// projection treats as hidden columns the read supplies.
std::shared_ptr<arrow::Schema> TableSchema(const arrow::RecordBatch& batch) {
  arrow::FieldVector fields;
  for (const auto& field : batch.schema()->fields()) {
    if (field->name() != kRowIdColumn && field->name() != kRowOffsetColumn) {
      fields.push_back(field);
    }
  }
  return arrow::schema(std::move(fields));
}

// What a read gives a bound projection or filter: the needed columns of the test table,
// taken by name, and nothing else.
std::shared_ptr<arrow::RecordBatch> NeededInput(const arrow::Schema& input_schema,
                                                const arrow::RecordBatch& batch) {
  arrow::ArrayVector columns;
  for (const auto& field : input_schema.fields()) {
    columns.push_back(batch.GetColumnByName(field->name()));
  }
  return arrow::RecordBatch::Make(std::make_shared<arrow::Schema>(input_schema),
                                  batch.num_rows(), std::move(columns));
}

std::string FormatNeeded(const arrow::Schema& input_schema) {
  std::string out = "needs:";
  for (const auto& field : input_schema.fields()) out += " " + field->name();
  return out;
}

// `select`: one output per line, `source` or `source AS name`. Prints the needed
// columns, the output schema and the output values, column by column.
std::string RunSelect(const Record& r, const arrow::RecordBatch& batch) {
  std::vector<OutputColumn> outputs;
  std::istringstream lines(r.input);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t as = line.rfind(" AS ");
    const std::string alias = as == std::string::npos ? "" : line.substr(as + 4);
    if (!alias.empty() && alias.find_first_of(" )") == std::string::npos) {
      outputs.emplace_back(alias, line.substr(0, as));
    } else {
      outputs.emplace_back(line, line);
    }
  }
  auto projection = Projection::Make(TableSchema(batch), outputs);
  if (!projection.ok()) return "error: " + projection.status().message();
  const Projection& p = **projection;
  auto out = p.Project(*NeededInput(*p.input_schema(), batch));
  if (!out.ok()) return "error: " + out.status().message();
  std::string text = FormatNeeded(*p.input_schema());
  if (p.pass_through()) text += " (pass-through)";
  for (int i = 0; i < (*out)->num_columns(); ++i) {
    text += "\n" + (*out)->schema()->field(i)->ToString() + ": " +
            FormatValues(*(*out)->column(i));
  }
  return text;
}

// `where`: prints the needed columns and the selected rows.
std::string RunWhere(const Record& r, const arrow::RecordBatch& batch) {
  auto filter = Filter::Make(TableSchema(batch), r.input);
  if (!filter.ok()) return "error: " + filter.status().message();
  auto selected = (*filter)->Evaluate(*NeededInput(*(*filter)->input_schema(), batch));
  if (!selected.ok()) return "error: " + selected.status().message();
  std::string rows;
  for (int64_t i = 0; i < (*selected)->length(); ++i) {
    if ((*selected)->Value(i)) rows += (rows.empty() ? "" : ", ") + std::to_string(i);
  }
  return FormatNeeded(*(*filter)->input_schema()) +
         "\nrows: " + (rows.empty() ? "none" : rows);
}

// Runs one record and returns its result in the golden format.
std::string RunRecord(const Record& r, const arrow::RecordBatch& batch) {
  if (r.directive == "select") return RunSelect(r, batch);
  if (r.directive == "where") return RunWhere(r, batch);
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
  return FormatValues(**values);
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
