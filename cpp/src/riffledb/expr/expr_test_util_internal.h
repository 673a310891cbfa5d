// The fixed test table of the expr tests and the fuzz target. Private to riffledb/expr.
#pragma once

#include <arrow/array.h>
#include <arrow/json/from_string.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type.h>

#include <memory>

namespace riffledb::internal {

/// Eight rows with nulls in most columns:
///   a int32, b int64, c double, s string, f bool, _rowid uint64 (the last is
///   UINT64_MAX), _rowoffset uint64, st struct<x int32, y string>, d date32,
///   t timestamp[us], `my col` int64, l list<int32>, ls large_string.
inline arrow::Result<std::shared_ptr<arrow::RecordBatch>> MakeExprTestBatch() {
  using arrow::json::ArrayFromJSONString;
  auto st_type = arrow::struct_(
      {arrow::field("x", arrow::int32()), arrow::field("y", arrow::utf8())});
  arrow::FieldVector fields = {
      arrow::field("a", arrow::int32()),
      arrow::field("b", arrow::int64()),
      arrow::field("c", arrow::float64()),
      arrow::field("s", arrow::utf8()),
      arrow::field("f", arrow::boolean()),
      arrow::field("_rowid", arrow::uint64()),
      arrow::field("_rowoffset", arrow::uint64()),
      arrow::field("st", st_type),
      arrow::field("d", arrow::date32()),
      arrow::field("t", arrow::timestamp(arrow::TimeUnit::MICRO)),
      arrow::field("my col", arrow::int64()),
      arrow::field("l", arrow::list(arrow::int32())),
      arrow::field("ls", arrow::large_utf8()),
  };
  const char* kJson[] = {
      "[1, 2, 3, null, 5, -6, 7, 0]",
      "[10, 20, null, 40, 50, 60, -70, 80]",
      "[1.5, null, 3.25, -4.0, NaN, 0.0, 7.5, 100.0]",
      R"(["apple", "Banana", null, "cherry", "", "a%b", "apple pie", "DATE"])",
      "[true, false, null, true, false, true, null, false]",
      "[0, 1, 2, 3, 4, 5, 6, 18446744073709551615]",
      "[0, 1, 2, 3, 4, 5, 6, 7]",
      R"([{"x": 1, "y": "p"}, {"x": 2, "y": null}, null, {"x": 4, "y": "q"},
          {"x": null, "y": "r"}, {"x": 6, "y": "p"}, {"x": 7, "y": "s"},
          {"x": 8, "y": "t"}])",
      // 2024-01-01 is day 19723
      "[19723, 19724, null, 19726, 19727, 19728, 19729, 19730]",
      R"(["2024-01-02 03:04:05", "2024-01-02 04:04:05", null, "2024-01-02 06:04:05",
          "2024-01-02 07:04:05.5", "2024-01-03 00:00:00", "2023-12-31 23:59:59",
          "2024-01-02 03:04:05.000001"])",
      "[0, 100, 200, 300, 400, 500, 600, 700]",
      "[[1, 2], [], null, [3], [4, 5, 6], [7], [8, null], []]",
      R"(["x", "y", null, "x", "z", "y", "x", ""])",
  };
  arrow::ArrayVector columns;
  for (size_t i = 0; i < fields.size(); ++i) {
    ARROW_ASSIGN_OR_RAISE(auto column, ArrayFromJSONString(fields[i]->type(), kJson[i]));
    columns.push_back(std::move(column));
  }
  return arrow::RecordBatch::Make(arrow::schema(fields), 8, std::move(columns));
}

}  // namespace riffledb::internal
