#include "riffledb/expr/projection.h"

#include <algorithm>
#include <optional>

#include "riffledb/expr/parser.h"
#include "riffledb/util/arrow_init.h"

namespace riffledb {

namespace {

namespace cp = arrow::compute;

bool IsHidden(const std::string& name) {
  return name == kRowIdColumn || name == kRowOffsetColumn;
}

// True if `source` is passed through rather than parsed.
bool IsPlainColumn(const arrow::Schema& schema, const std::string& source) {
  return IsHidden(source) || schema.GetFieldIndex(source) >= 0;
}

bool Contains(const std::vector<std::string>& names, const char* name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string ColumnList(const arrow::Schema& schema) {
  std::string names;
  for (const auto& field : schema.fields()) {
    if (!names.empty()) names += ", ";
    names += field->name();
  }
  return names;
}

// The needed columns of `referenced` (top-level names). Names that are neither a column
// nor hidden set *unknown: binding then reports them.
NeededColumns Resolve(const arrow::Schema& schema,
                      const std::vector<std::string>& referenced, bool* unknown) {
  NeededColumns needed;
  std::vector<bool> used(schema.num_fields(), false);
  *unknown = false;
  for (const auto& name : referenced) {
    if (name == kRowIdColumn) {
      needed.row_id = true;
    } else if (name == kRowOffsetColumn) {
      needed.row_offset = true;
    } else if (const int index = schema.GetFieldIndex(name); index >= 0) {
      used[index] = true;
    } else {
      *unknown = true;
    }
  }
  for (int i = 0; i < schema.num_fields(); ++i) {
    if (used[i]) needed.columns.push_back(i);
  }
  return needed;
}

std::shared_ptr<arrow::Schema> InputSchema(const arrow::Schema& schema,
                                           const NeededColumns& needed) {
  arrow::FieldVector fields;
  fields.reserve(needed.size());
  for (int i : needed.columns) fields.push_back(schema.field(i));
  if (needed.row_id) fields.push_back(HiddenColumnField(kRowIdColumn));
  if (needed.row_offset) fields.push_back(HiddenColumnField(kRowOffsetColumn));
  return arrow::schema(std::move(fields));
}

// Index in the input batch of a needed plain column.
int InputIndex(const arrow::Schema& schema, const NeededColumns& needed,
               const std::string& name) {
  const int n = static_cast<int>(needed.columns.size());
  if (name == kRowIdColumn) return n;
  if (name == kRowOffsetColumn) return n + (needed.row_id ? 1 : 0);
  const int index = schema.GetFieldIndex(name);
  return static_cast<int>(
      std::lower_bound(needed.columns.begin(), needed.columns.end(), index) -
      needed.columns.begin());
}

// With an unknown column, binds against every column (and the hidden columns that are
// referenced) so that the message lists what is available, as the language documents.
arrow::Status ReportUnknown(const arrow::Schema& schema,
                            const std::vector<std::string>& referenced,
                            std::span<const cp::Expression> exprs) {
  arrow::FieldVector fields = schema.fields();
  if (Contains(referenced, kRowIdColumn)) {
    fields.push_back(HiddenColumnField(kRowIdColumn));
  }
  if (Contains(referenced, kRowOffsetColumn)) {
    fields.push_back(HiddenColumnField(kRowOffsetColumn));
  }
  const arrow::Schema full(std::move(fields));
  for (const auto& expr : exprs) {
    ARROW_RETURN_NOT_OK(BindExpression(expr, full));
  }
  return arrow::Status::OK();
}

}  // namespace

std::shared_ptr<arrow::Field> HiddenColumnField(const std::string& name) {
  return arrow::field(name, arrow::uint64(), /*nullable=*/false);
}

bool SameSchema(const std::shared_ptr<arrow::Schema>& a,
                const std::shared_ptr<arrow::Schema>& b) {
  return a == b || (a != nullptr && b != nullptr && a->Equals(*b, false));
}

// ---------------------------------------------------------------------------------------
// Projection

arrow::Result<std::shared_ptr<const Projection>> Projection::All(
    std::shared_ptr<arrow::Schema> schema, bool with_row_id) {
  if (schema == nullptr) return arrow::Status::Invalid("Projection: schema is required");
  std::shared_ptr<Projection> p(new Projection());
  const int n = schema->num_fields();
  p->needed_.columns.resize(n);
  for (int i = 0; i < n; ++i) p->needed_.columns[i] = i;
  p->needed_.row_id = with_row_id;
  p->input_schema_ = InputSchema(*schema, p->needed_);
  if (with_row_id) {
    p->output_schema_ = arrow::schema(p->input_schema_->fields(), schema->metadata());
  } else {
    p->output_schema_ = schema;
  }
  for (int i = 0; i < p->needed_.size(); ++i) p->outputs_.push_back({i, {}, {}});
  p->pass_through_ = true;
  p->all_columns_ = !with_row_id;
  p->schema_ = std::move(schema);
  return p;
}

arrow::Result<std::shared_ptr<const Projection>> Projection::Columns(
    std::shared_ptr<arrow::Schema> schema, std::span<const std::string> names,
    bool with_row_id) {
  if (schema == nullptr) return arrow::Status::Invalid("Projection: schema is required");
  if (names.empty()) return All(std::move(schema), with_row_id);
  // Takes bind per call: names in schema order (the common case) are bound here, with
  // one schema; anything else goes through Make.
  NeededColumns needed;
  bool in_order = true;
  for (const auto& name : names) {
    const int index = schema->GetFieldIndex(name);
    if (index < 0 && !IsHidden(name)) {
      return arrow::Status::Invalid(
          "Column '", name, "' does not exist; available columns: ", ColumnList(*schema));
    }
    if (index < 0 || (!needed.columns.empty() && index <= needed.columns.back())) {
      in_order = false;  // hidden columns, repeats or another order
    } else {
      needed.columns.push_back(index);
    }
  }
  if (!in_order) {
    std::vector<OutputColumn> outputs;
    outputs.reserve(names.size());
    for (const auto& name : names) outputs.emplace_back(name, name);
    return Make(std::move(schema), outputs, with_row_id);
  }
  std::shared_ptr<Projection> p(new Projection());
  p->needed_ = std::move(needed);
  p->needed_.row_id = with_row_id;
  arrow::FieldVector fields;
  fields.reserve(p->needed_.size());
  for (int i : p->needed_.columns) fields.push_back(schema->field(i));
  if (with_row_id) fields.push_back(HiddenColumnField(kRowIdColumn));
  p->all_columns_ = !with_row_id && p->needed_.size() == schema->num_fields();
  p->output_schema_ =
      p->all_columns_ ? schema : arrow::schema(std::move(fields), schema->metadata());
  p->input_schema_ = p->output_schema_;
  p->outputs_.reserve(p->needed_.size());
  for (int i = 0; i < p->needed_.size(); ++i) p->outputs_.push_back({i, {}, {}});
  p->pass_through_ = true;
  p->schema_ = std::move(schema);
  return p;
}

arrow::Result<std::shared_ptr<const Projection>> Projection::Make(
    std::shared_ptr<arrow::Schema> schema, std::span<const OutputColumn> outputs,
    bool with_row_id) {
  if (outputs.empty()) return All(std::move(schema), with_row_id);
  if (schema == nullptr) return arrow::Status::Invalid("Projection: schema is required");
  ARROW_RETURN_NOT_OK(EnsureArrowComputeInitialized());
  const arrow::Schema& table = *schema;

  // Parse what is not a plain column, and collect every referenced column.
  std::vector<std::optional<cp::Expression>> parsed(outputs.size());
  std::vector<cp::Expression> exprs;
  std::vector<std::string> referenced;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const std::string& source = outputs[i].second;
    if (IsPlainColumn(table, source)) {
      referenced.push_back(source);
      continue;
    }
    ARROW_ASSIGN_OR_RAISE(parsed[i], ParseExpression(source));
    for (auto& name : ReferencedColumns(*parsed[i]))
      referenced.push_back(std::move(name));
    exprs.push_back(*parsed[i]);
  }
  if (with_row_id) referenced.push_back(kRowIdColumn);

  std::shared_ptr<Projection> p(new Projection());
  bool unknown = false;
  p->needed_ = Resolve(table, referenced, &unknown);
  if (unknown) ARROW_RETURN_NOT_OK(ReportUnknown(table, referenced, exprs));
  p->input_schema_ = InputSchema(table, p->needed_);

  arrow::FieldVector fields;
  fields.reserve(outputs.size() + (with_row_id ? 1 : 0));
  for (size_t i = 0; i < outputs.size(); ++i) {
    const auto& [name, source] = outputs[i];
    Output output;
    if (!parsed[i]) {
      output.input = InputIndex(table, p->needed_, source);
      fields.push_back(p->input_schema_->field(output.input)->WithName(name));
    } else {
      ARROW_ASSIGN_OR_RAISE(output.expr, BindExpression(*parsed[i], *p->input_schema_));
      output.sql = source;
      fields.push_back(arrow::field(name, output.expr.type()->GetSharedPtr()));
    }
    p->outputs_.push_back(std::move(output));
  }
  if (with_row_id) {
    p->outputs_.push_back({InputIndex(table, p->needed_, kRowIdColumn), {}, {}});
    fields.push_back(HiddenColumnField(kRowIdColumn));
  }

  p->pass_through_ = static_cast<int>(p->outputs_.size()) == p->needed_.size();
  for (size_t i = 0; i < p->outputs_.size() && p->pass_through_; ++i) {
    if (p->outputs_[i].input != static_cast<int>(i)) p->pass_through_ = false;
  }
  p->all_columns_ = p->pass_through_ && !p->needed_.row_id && !p->needed_.row_offset &&
                    p->needed_.size() == table.num_fields();
  for (int i = 0; i < table.num_fields() && p->all_columns_; ++i) {
    if (fields[i]->name() != table.field(i)->name()) p->all_columns_ = false;
  }
  bool same_names = p->pass_through_;
  for (size_t i = 0; i < fields.size() && same_names; ++i) {
    same_names = fields[i]->name() == p->input_schema_->field(i)->name();
  }
  if (p->all_columns_) {
    p->output_schema_ = schema;
  } else if (same_names) {
    // The input is the output: one schema (a take binds per call; this saves one).
    p->output_schema_ = p->input_schema_->WithMetadata(table.metadata());
    p->input_schema_ = p->output_schema_;
  } else {
    p->output_schema_ = arrow::schema(std::move(fields), table.metadata());
  }
  p->schema_ = std::move(schema);
  return p;
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> Projection::Project(
    arrow::ArrayVector inputs, int64_t num_rows) const {
  if (static_cast<int>(inputs.size()) != input_schema_->num_fields()) {
    return arrow::Status::Invalid("Projection expects ", input_schema_->num_fields(),
                                  " input columns (", ColumnList(*input_schema_),
                                  "), got ", inputs.size());
  }
  if (pass_through_) {
    return arrow::RecordBatch::Make(output_schema_, num_rows, std::move(inputs));
  }
  arrow::ArrayVector columns;
  columns.reserve(outputs_.size());
  std::shared_ptr<arrow::RecordBatch> input;  // made for the first expression
  for (size_t i = 0; i < outputs_.size(); ++i) {
    const Output& output = outputs_[i];
    if (output.input >= 0) {
      columns.push_back(inputs[output.input]);
      continue;
    }
    if (input == nullptr)
      input = arrow::RecordBatch::Make(input_schema_, num_rows, inputs);
    auto column = EvaluateExpression(output.expr, *input);
    if (!column.ok()) {
      // Arrow says "divide by zero"; the user needs to know which expression did.
      const auto& status = column.status();
      return status.WithMessage("Column '",
                                output_schema_->field(static_cast<int>(i))->name(),
                                "' = '", output.sql, "' failed: ", status.message());
    }
    columns.push_back(*std::move(column));
  }
  return arrow::RecordBatch::Make(output_schema_, num_rows, std::move(columns));
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> Projection::Project(
    const arrow::RecordBatch& input) const {
  return Project(input.columns(), input.num_rows());
}

// ---------------------------------------------------------------------------------------
// Filter

arrow::Result<std::shared_ptr<const Filter>> Filter::Make(
    std::shared_ptr<arrow::Schema> schema, std::string_view sql) {
  ARROW_ASSIGN_OR_RAISE(auto parsed, ParseExpression(sql));
  return Bind(std::move(schema), std::move(parsed), std::string(sql));
}

arrow::Result<std::shared_ptr<const Filter>> Filter::Bind(
    std::shared_ptr<arrow::Schema> schema, cp::Expression parsed, std::string sql) {
  if (schema == nullptr) return arrow::Status::Invalid("Filter: schema is required");
  ARROW_RETURN_NOT_OK(EnsureArrowComputeInitialized());
  std::shared_ptr<Filter> f(new Filter());
  const std::vector<std::string> referenced = ReferencedColumns(parsed);
  bool unknown = false;
  f->needed_ = Resolve(*schema, referenced, &unknown);
  if (unknown) {
    ARROW_RETURN_NOT_OK(ReportUnknown(*schema, referenced, std::span(&parsed, 1)));
  }
  f->input_schema_ = InputSchema(*schema, f->needed_);
  ARROW_ASSIGN_OR_RAISE(f->bound_, BindExpression(parsed, *f->input_schema_));
  f->sql_ = sql.empty() ? parsed.ToString() : std::move(sql);
  f->parsed_ = std::move(parsed);
  f->schema_ = std::move(schema);
  return f;
}

arrow::Result<std::shared_ptr<const Filter>> Filter::Rebind(
    std::shared_ptr<arrow::Schema> schema) const {
  return Bind(std::move(schema), parsed_, sql_);
}

arrow::Result<std::shared_ptr<arrow::BooleanArray>> Filter::Evaluate(
    const arrow::RecordBatch& input) const {
  auto mask = EvaluateFilter(bound_, input);
  if (!mask.ok()) {
    // Arrow says "divide by zero"; the user needs to know which filter did.
    return mask.status().WithMessage("Filter '", sql_,
                                     "' failed: ", mask.status().message());
  }
  return mask;
}

}  // namespace riffledb
