// Fuzz target: parse arbitrary bytes; when they parse, bind to the test schema and
// evaluate on the test batch (as a filter when boolean, else as a projection). Nothing
// may crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "riffledb/expr/expr_test_util_internal.h"
#include "riffledb/expr/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto batch = riffledb::internal::MakeExprTestBatch().ValueOrDie();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = riffledb::ParseExpression(text);
  if (!parsed.ok()) return 0;
  (void)riffledb::ReferencedColumns(*parsed);
  auto bound = riffledb::BindExpression(*parsed, *batch->schema());
  if (!bound.ok()) return 0;
  if (bound->type() != nullptr && bound->type()->id() == arrow::Type::BOOL) {
    auto selected = riffledb::EvaluateFilter(*bound, *batch);
    if (selected.ok() &&
        ((*selected)->length() != batch->num_rows() || (*selected)->null_count() != 0)) {
      __builtin_trap();  // the contract says: num_rows values, no nulls
    }
  } else {
    auto values = riffledb::EvaluateExpression(*bound, *batch);
    if (values.ok() && (*values)->length() != batch->num_rows()) __builtin_trap();
  }
  return 0;
}
