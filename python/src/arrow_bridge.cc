#include "arrow_bridge.h"

#include <arrow/array.h>
#include <arrow/c/abi.h>
#include <arrow/c/bridge.h>
#include <arrow/table.h>
#include <arrow/util/bit_util.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

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
  auto* stream =
      static_cast<ArrowArrayStream*>(PyCapsule_GetPointer(capsule, "arrow_array_stream"));
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

// How one column maps onto a NumPy array: dtype, shape and where its first value is.
struct NumpyForm {
  nb::dlpack::dtype dtype;
  std::vector<size_t> shape;
  const uint8_t* data = nullptr;
  // The buffer holding the values (null for booleans, which are unpacked into a copy).
  const arrow::Buffer* values = nullptr;
  bool boolean = false;
};

// The dtype of a number type, or false for any other type (temporals, decimals and
// dictionaries are fixed-width too, but have no plain NumPy number form).
bool NumberDtype(arrow::Type::type id, nb::dlpack::dtype* dtype) {
  switch (id) {
    case arrow::Type::INT8:
      *dtype = nb::dtype<int8_t>();
      return true;
    case arrow::Type::INT16:
      *dtype = nb::dtype<int16_t>();
      return true;
    case arrow::Type::INT32:
      *dtype = nb::dtype<int32_t>();
      return true;
    case arrow::Type::INT64:
      *dtype = nb::dtype<int64_t>();
      return true;
    case arrow::Type::UINT8:
      *dtype = nb::dtype<uint8_t>();
      return true;
    case arrow::Type::UINT16:
      *dtype = nb::dtype<uint16_t>();
      return true;
    case arrow::Type::UINT32:
      *dtype = nb::dtype<uint32_t>();
      return true;
    case arrow::Type::UINT64:
      *dtype = nb::dtype<uint64_t>();
      return true;
    case arrow::Type::HALF_FLOAT:
      *dtype = {static_cast<uint8_t>(nb::dlpack::dtype_code::Float), 16, 1};
      return true;
    case arrow::Type::FLOAT:
      *dtype = nb::dtype<float>();
      return true;
    case arrow::Type::DOUBLE:
      *dtype = nb::dtype<double>();
      return true;
    default:
      return false;
  }
}

// Fills `form` for the values of `data` from logical row `start` on (numbers and nested
// fixed-size lists of numbers, without nulls at any level). False when not applicable.
bool DescribeNumbers(const arrow::ArrayData& data, int64_t start, NumpyForm* form) {
  if (data.GetNullCount() != 0) return false;
  if (data.type->id() == arrow::Type::FIXED_SIZE_LIST) {
    const int32_t size =
        static_cast<const arrow::FixedSizeListType&>(*data.type).list_size();
    form->shape.push_back(static_cast<size_t>(size));
    return DescribeNumbers(*data.child_data[0], (data.offset + start) * size, form);
  }
  if (!NumberDtype(data.type->id(), &form->dtype)) return false;
  if (data.buffers.size() < 2 || data.buffers[1] == nullptr) {
    // Only an empty array may lack its values buffer; any non-null address will do.
    static const uint64_t kEmpty = 0;
    if (data.length != 0) return false;
    form->data = reinterpret_cast<const uint8_t*>(&kEmpty);
    return true;
  }
  form->values = data.buffers[1].get();
  form->data = data.buffers[1]->data() + (data.offset + start) * (form->dtype.bits / 8);
  return true;
}

bool DescribeColumn(const arrow::ArrayData& data, NumpyForm* form) {
  form->shape.assign(1, static_cast<size_t>(data.length));
  if (data.type->id() == arrow::Type::BOOL) {
    if (data.GetNullCount() != 0) return false;
    form->dtype = nb::dtype<bool>();
    form->boolean = true;
    return true;
  }
  return DescribeNumbers(data, 0, form);
}

// Owns what a NumPy array views: the column's data, or an unpacked boolean buffer.
template <typename T>
nb::capsule Owner(T value) {
  return nb::capsule(new T(std::move(value)),
                     [](void* p) noexcept { delete static_cast<T*>(p); });
}

nb::object NumpyArray(const NumpyForm& form, void* data, nb::handle owner) {
  return nb::ndarray<nb::numpy>(data, form.shape.size(), form.shape.data(), owner,
                                nullptr, form.dtype)
      .cast();
}

// A new buffer of `size` bytes (at least one, so that an empty array has an address too).
std::unique_ptr<uint8_t[]> NewBytes(int64_t size) {
  return std::make_unique_for_overwrite<uint8_t[]>(
      static_cast<size_t>(size > 0 ? size : 1));
}

// A list of exact Python ints as a new 1-D int64 (uint64 if `unsigned_keys`) NumPy
// array, in one pass without NumPy's type discovery; None for anything else: not a list,
// an item that is not exactly an int (a bool, a NumPy integer, a str), or a value
// outside the type's range. The caller's general path then converts the value or names
// what is wrong with it.
nb::object ExactIntList(nb::handle values, bool unsigned_keys) {
  if (!PyList_CheckExact(values.ptr())) return nb::none();
  const Py_ssize_t n = PyList_GET_SIZE(values.ptr());
  auto keys =
      std::make_unique_for_overwrite<uint64_t[]>(static_cast<size_t>(n > 0 ? n : 1));
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item = PyList_GET_ITEM(values.ptr(), i);
    if (!PyLong_CheckExact(item)) return nb::none();
    if (unsigned_keys) {
      const unsigned long long key = PyLong_AsUnsignedLongLong(item);
      if (key == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
        PyErr_Clear();  // negative or too large
        return nb::none();
      }
      keys[static_cast<size_t>(i)] = key;
    } else {
      int overflow = 0;
      const long long key = PyLong_AsLongLongAndOverflow(item, &overflow);
      if (overflow != 0) return nb::none();
      keys[static_cast<size_t>(i)] = static_cast<uint64_t>(key);
    }
  }
  NumpyForm form;
  form.shape.assign(1, static_cast<size_t>(n));
  form.dtype = unsigned_keys ? nb::dtype<uint64_t>() : nb::dtype<int64_t>();
  void* data = keys.get();
  return NumpyArray(form, data, Owner(std::move(keys)));
}

}  // namespace

arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> ImportStream(nb::handle obj) {
  if (!nb::hasattr(obj, "__arrow_c_stream__")) {
    return arrow::Status::TypeError("expected an object with __arrow_c_stream__, got ",
                                    nb::type_name(obj.type()).c_str());
  }
  nb::object capsule = obj.attr("__arrow_c_stream__")();
  auto* stream = CapsulePointer<ArrowArrayStream>(capsule, "arrow_array_stream");
  // Moves the stream out of the capsule; the capsule's destructor then sees a released
  // one.
  return arrow::ImportRecordBatchReader(stream);
}

arrow::Result<std::shared_ptr<arrow::Schema>> ImportSchema(nb::handle obj) {
  if (!nb::hasattr(obj, "__arrow_c_schema__")) {
    return arrow::Status::TypeError("expected an object with __arrow_c_schema__, got ",
                                    nb::type_name(obj.type()).c_str());
  }
  nb::object capsule = obj.attr("__arrow_c_schema__")();
  auto* schema = CapsulePointer<ArrowSchema>(capsule, "arrow_schema");
  // ImportSchema moves out of `schema`, so copy first: the producer keeps ownership of
  // its own.
  ArrowSchema copy = *schema;
  schema->release = nullptr;
  return arrow::ImportSchema(&copy);
}

nb::object ExportStream(std::shared_ptr<arrow::RecordBatchReader> reader) {
  auto stream = std::make_unique<ArrowArrayStream>();
  ThrowIfError(arrow::ExportRecordBatchReader(std::move(reader), stream.get()));
  return MakeCapsule(stream.release(), "arrow_array_stream", ReleaseStreamCapsule);
}

namespace {

// A reader read from Python one batch at a time, or whole. Not thread-safe: one consumer.
class NativeStream {
 public:
  explicit NativeStream(std::shared_ptr<arrow::RecordBatchReader> reader)
      : reader_(std::move(reader)) {}

  nb::object schema() const { return ExportSchema(reader_->schema()); }

  // (address, owner) of the next batch's ArrowArray (see ExportBatchArray), or None at
  // the end; the caller imports it against schema().
  nb::object ReadNext() {
    std::shared_ptr<arrow::RecordBatch> batch;
    ThrowIfError(WithoutGil([&] { return reader_->ReadNext(&batch); }));
    if (batch == nullptr) return nb::none();
    return ExportBatchArray(batch);
  }

  // The remaining batches as one table, exported as a stream (which cannot fail).
  nb::object ReadAll() {
    auto table = ValueOrThrow(WithoutGil([&] { return reader_->ToTable(); }));
    return ExportTable(table);
  }

 private:
  std::shared_ptr<arrow::RecordBatchReader> reader_;
};

}  // namespace

nb::object WrapStream(std::shared_ptr<arrow::RecordBatchReader> reader) {
  return nb::cast(NativeStream(std::move(reader)));
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
  nb::object array_capsule =
      MakeCapsule(array.release(), "arrow_array", ReleaseArrayCapsule);
  return nb::make_tuple(schema_capsule, array_capsule);
}

nb::object ExportBatchArray(const std::shared_ptr<arrow::RecordBatch>& batch) {
  auto array = std::make_unique<ArrowArray>();
  ThrowIfError(arrow::ExportRecordBatch(*batch, array.get(), /*out_schema=*/nullptr));
  const auto address = reinterpret_cast<uintptr_t>(array.get());
  nb::object owner = MakeCapsule(array.release(), "arrow_array", ReleaseArrayCapsule);
  return nb::make_tuple(nb::int_(address), owner);
}

nb::object ExportNumpyColumns(const std::shared_ptr<arrow::RecordBatch>& batch) {
  const int n = batch->num_columns();
  std::vector<NumpyForm> forms(n);
  for (int i = 0; i < n; ++i) {
    // column_data(), not column(): no boxing into an arrow::Array (and none of
    // RecordBatch::column()'s locking).
    if (!DescribeColumn(*batch->column_data(i), &forms[i])) return nb::none();
  }
  nb::list out;
  for (int i = 0; i < n; ++i) {
    const NumpyForm& form = forms[i];
    const auto& data = *batch->column_data(i);
    if (form.boolean) {
      auto bytes = NewBytes(data.length);
      const uint8_t* bits = data.length > 0 ? data.buffers[1]->data() : nullptr;
      for (int64_t r = 0; r < data.length; ++r) {
        bytes[r] = arrow::bit_util::GetBit(bits, data.offset + r) ? 1 : 0;
      }
      void* ptr = bytes.get();
      out.append(NumpyArray(form, ptr, Owner(std::move(bytes))));
      continue;
    }
    // A view when nobody else can see the memory: Arrow allocated it (a memory map or a
    // buffer imported from Python is not mutable) and no other column shares it (a column
    // selected twice). Otherwise a copy, so that every array owns its memory alone.
    bool exclusive = form.values != nullptr && form.values->is_mutable();
    for (int j = 0; j < n && exclusive; ++j) {
      exclusive = j == i || forms[j].values != form.values;
    }
    if (exclusive) {
      out.append(NumpyArray(form, const_cast<uint8_t*>(form.data),
                            Owner(batch->column_data(i))));
      continue;
    }
    int64_t size = form.dtype.bits / 8;
    for (size_t extent : form.shape) size *= static_cast<int64_t>(extent);
    auto bytes = NewBytes(size);
    if (size > 0) std::memcpy(bytes.get(), form.data, static_cast<size_t>(size));
    void* ptr = bytes.get();
    out.append(NumpyArray(form, ptr, Owner(std::move(bytes))));
  }
  return out;
}

void RegisterArrow(nb::module_& m) {
  nb::class_<NativeStream>(m, "NativeStream")
      .def("schema", &NativeStream::schema)
      .def("read_next", &NativeStream::ReadNext)
      .def("read_all", &NativeStream::ReadAll);
  m.def("exact_int_list", &ExactIntList, nb::arg("values"), nb::arg("unsigned_keys"));
  // A smoke path used by tests: round-trips any Arrow stream through C++.
  m.def("_roundtrip_stream", [](nb::handle obj) {
    auto reader = ValueOrThrow(ImportStream(obj));
    auto table = ValueOrThrow(WithoutGil([&] { return reader->ToTable(); }));
    return ExportTable(table);
  });
}

}  // namespace riffledb::python
