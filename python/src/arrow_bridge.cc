#include "arrow_bridge.h"

#include <arrow/c/abi.h>
#include <arrow/c/bridge.h>
#include <arrow/table.h>

#include "bindings.h"
#include "errors.h"

namespace nb = nanobind;

namespace riffledb::python {
namespace {

template <typename T>
T* CapsulePointer(nb::handle capsule, const char* name) {
  auto* ptr = static_cast<T*>(PyCapsule_GetPointer(capsule.ptr(), name));
  if (ptr == nullptr) throw nb::python_error();
  return ptr;
}

void ReleaseStreamCapsule(PyObject* capsule) {
  auto* stream = static_cast<ArrowArrayStream*>(
      PyCapsule_GetPointer(capsule, "arrow_array_stream"));
  if (stream == nullptr) {
    PyErr_Clear();
    return;
  }
  if (stream->release != nullptr) stream->release(stream);
  delete stream;
}

void ReleaseSchemaCapsule(PyObject* capsule) {
  auto* schema = static_cast<ArrowSchema*>(PyCapsule_GetPointer(capsule, "arrow_schema"));
  if (schema == nullptr) {
    PyErr_Clear();
    return;
  }
  if (schema->release != nullptr) schema->release(schema);
  delete schema;
}

void ReleaseArrayCapsule(PyObject* capsule) {
  auto* array = static_cast<ArrowArray*>(PyCapsule_GetPointer(capsule, "arrow_array"));
  if (array == nullptr) {
    PyErr_Clear();
    return;
  }
  if (array->release != nullptr) array->release(array);
  delete array;
}

nb::object MakeCapsule(void* ptr, const char* name, PyCapsule_Destructor destructor) {
  PyObject* capsule = PyCapsule_New(ptr, name, destructor);
  if (capsule == nullptr) throw nb::python_error();
  return nb::steal(capsule);
}

}  // namespace

arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> ImportStream(nb::handle obj) {
  if (!nb::hasattr(obj, "__arrow_c_stream__")) {
    return arrow::Status::TypeError("expected an object with __arrow_c_stream__, got ",
                                    nb::type_name(obj.type()).c_str());
  }
  nb::object capsule = obj.attr("__arrow_c_stream__")();
  auto* stream = CapsulePointer<ArrowArrayStream>(capsule, "arrow_array_stream");
  // Moves the stream out of the capsule; the capsule's destructor then sees a released one.
  return arrow::ImportRecordBatchReader(stream);
}

arrow::Result<std::shared_ptr<arrow::Schema>> ImportSchema(nb::handle obj) {
  if (!nb::hasattr(obj, "__arrow_c_schema__")) {
    return arrow::Status::TypeError("expected an object with __arrow_c_schema__, got ",
                                    nb::type_name(obj.type()).c_str());
  }
  nb::object capsule = obj.attr("__arrow_c_schema__")();
  auto* schema = CapsulePointer<ArrowSchema>(capsule, "arrow_schema");
  // ImportSchema moves out of `schema`, so copy first: the producer keeps ownership of its own.
  ArrowSchema copy = *schema;
  schema->release = nullptr;
  return arrow::ImportSchema(&copy);
}

nb::object ExportStream(std::shared_ptr<arrow::RecordBatchReader> reader) {
  auto stream = std::make_unique<ArrowArrayStream>();
  ThrowIfError(arrow::ExportRecordBatchReader(std::move(reader), stream.get()));
  return MakeCapsule(stream.release(), "arrow_array_stream", ReleaseStreamCapsule);
}

nb::object ExportTable(const std::shared_ptr<arrow::Table>& table) {
  return ExportStream(std::make_shared<arrow::TableBatchReader>(table));
}

nb::object ExportSchema(const std::shared_ptr<arrow::Schema>& schema) {
  auto out = std::make_unique<ArrowSchema>();
  ThrowIfError(arrow::ExportSchema(*schema, out.get()));
  return MakeCapsule(out.release(), "arrow_schema", ReleaseSchemaCapsule);
}

nb::object ExportBatch(const std::shared_ptr<arrow::RecordBatch>& batch) {
  auto schema = std::make_unique<ArrowSchema>();
  auto array = std::make_unique<ArrowArray>();
  ThrowIfError(arrow::ExportRecordBatch(*batch, array.get(), schema.get()));
  nb::object schema_capsule =
      MakeCapsule(schema.release(), "arrow_schema", ReleaseSchemaCapsule);
  nb::object array_capsule = MakeCapsule(array.release(), "arrow_array", ReleaseArrayCapsule);
  return nb::make_tuple(schema_capsule, array_capsule);
}

void RegisterArrow(nb::module_& m) {
  // A smoke path used by tests: round-trips any Arrow stream through C++.
  m.def("_roundtrip_stream", [](nb::handle obj) {
    auto reader = ValueOrThrow(ImportStream(obj));
    auto table = ValueOrThrow(WithoutGil([&] { return reader->ToTable(); }));
    return ExportTable(table);
  });
}

}  // namespace riffledb::python
