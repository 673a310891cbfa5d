#include "errors.h"

#include <Python.h>

#include <optional>
#include <string>

#include "bindings.h"
#include "riffledb/remote/client/http_client.h"
#include "riffledb/util/status.h"

namespace nb = nanobind;

namespace riffledb::python {

namespace {

// The classes of riffledb.errors, looked up once at module init so that raising never
// imports or looks up anything. Strong references, never released: the module cannot be
// unloaded, and releasing at interpreter exit would race the errors module's teardown.
struct ErrorClasses {
  PyObject* invalid = nullptr;
  PyObject* table_not_found = nullptr;
  PyObject* table_exists = nullptr;
  PyObject* type = nullptr;
  PyObject* key = nullptr;
  PyObject* index = nullptr;
  PyObject* io = nullptr;
  PyObject* corruption = nullptr;
  PyObject* commit_outcome_unknown = nullptr;
  PyObject* not_supported = nullptr;
  PyObject* memory = nullptr;
  PyObject* internal = nullptr;
};

ErrorClasses& Classes() {
  static ErrorClasses classes;
  return classes;
}

bool LookUpClasses();

PyObject* ClassFor(const arrow::Status& status) {
  const ErrorClasses& c = Classes();
  if (c.invalid == nullptr && !LookUpClasses()) return PyExc_RuntimeError;
  std::optional<ErrorKind> kind = GetErrorKind(status);
  if (kind == ErrorKind::kCorruption) return c.corruption;
  if (kind == ErrorKind::kCommitOutcomeUnknown) return c.commit_outcome_unknown;
  switch (status.code()) {
    case arrow::StatusCode::Invalid:
    case arrow::StatusCode::SerializationError:
      if (kind == ErrorKind::kTableNotFound) return c.table_not_found;
      if (kind == ErrorKind::kTableExists) return c.table_exists;
      return c.invalid;
    case arrow::StatusCode::KeyError:
      return c.key;
    case arrow::StatusCode::IndexError:
      return c.index;
    // AlreadyExists is a commit lost to another writer: the storage, not the call.
    case arrow::StatusCode::IOError:
    case arrow::StatusCode::AlreadyExists:
      return c.io;
    case arrow::StatusCode::NotImplemented:
      return c.not_supported;
    case arrow::StatusCode::TypeError:
      return c.type;
    case arrow::StatusCode::CapacityError:
    case arrow::StatusCode::OutOfMemory:
      return c.memory;
    case arrow::StatusCode::Cancelled:
      // An interrupted wait is Ctrl-C: it must stay what `except KeyboardInterrupt`
      // catches, not become an error of ours.
      return PyExc_KeyboardInterrupt;
    default:
      return c.internal;
  }
}

}  // namespace

namespace {

// A failed request of the remote client: riffledb.remote.errors.HttpError
// (BadRequestError for a 400, NotFoundError for a 404), or RetryError whose __cause__ is
// the last attempt's HttpError, with LanceDB's fields.
[[noreturn]] void RaiseHttpError(const arrow::Status& status,
                                 const remote::HttpErrorDetail& detail) {
  const remote::HttpErrorDetail::Fields& f = detail.fields();
  nb::module_ errors = nb::module_::import_("riffledb.remote.errors");
  nb::object code = f.status_code ? nb::cast(*f.status_code) : nb::none();
  // A 400 is also a ValueError (BadRequestError), as a local table's InvalidError; a
  // 404 also a TableNotFoundError (NotFoundError), as the remote table's own reads say.
  const char* type = f.status_code == 400   ? "BadRequestError"
                     : f.status_code == 404 ? "NotFoundError"
                                            : "HttpError";
  nb::object http = errors.attr(type)(nb::str(f.message.c_str(), f.message.size()),
                                      nb::str(f.request_id.c_str()), code);
  if (!f.retries_exhausted) {
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(http.ptr())), http.ptr());
    throw nb::python_error();
  }
  const std::string& message = status.message();
  nb::object retry = errors.attr("RetryError")(
      nb::str(message.c_str(), message.size()), nb::str(f.request_id.c_str()),
      f.request_failures, f.connect_failures, f.read_failures, f.max_request_failures,
      f.max_connect_failures, f.max_read_failures, code);
  PyException_SetCause(retry.ptr(), http.release().ptr());  // steals the reference
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(retry.ptr())), retry.ptr());
  throw nb::python_error();
}

}  // namespace

void RaiseStatus(const arrow::Status& status) {
  if (const remote::HttpErrorDetail* detail = remote::GetHttpErrorDetail(status)) {
    RaiseHttpError(status, *detail);
  }
  // Messages quote untrusted bytes (a damaged manifest's text): bytes that are not
  // UTF-8 are escaped rather than turning the error into a UnicodeDecodeError that
  // loses the message.
  const std::string& message = status.message();
  PyObject* text = PyUnicode_DecodeUTF8(
      message.data(), static_cast<Py_ssize_t>(message.size()), "backslashreplace");
  if (text == nullptr) {
    PyErr_Clear();
    PyErr_SetString(ClassFor(status), "(undecodable error message)");
  } else {
    PyErr_SetObject(ClassFor(status), text);
    Py_DECREF(text);
  }
  throw nb::python_error();
}

namespace {

// Looks the classes up in riffledb.errors; false (and no Python error left set) if that
// module cannot be imported.
bool LookUpClasses() {
  PyObject* errors = PyImport_ImportModule("riffledb.errors");
  if (errors == nullptr) {
    PyErr_Clear();
    return false;
  }
  ErrorClasses& c = Classes();
  auto get = [&](const char* name) { return PyObject_GetAttrString(errors, name); };
  c.invalid = get("InvalidError");
  c.table_not_found = get("TableNotFoundError");
  c.table_exists = get("TableExistsError");
  c.type = get("RiffledbTypeError");
  c.key = get("RiffledbKeyError");
  c.index = get("RiffledbIndexError");
  c.io = get("RiffledbIOError");
  c.corruption = get("CorruptionError");
  c.commit_outcome_unknown = get("CommitOutcomeUnknownError");
  c.not_supported = get("NotSupportedError");
  c.memory = get("RiffledbMemoryError");
  c.internal = get("InternalError");
  Py_DECREF(errors);
  return true;
}

}  // namespace

void RegisterErrors(nb::module_& m) {
  // The extension imported alone (the stub generator of a wheel build imports it without
  // its package) cannot see riffledb.errors: RaiseStatus then looks again on first use.
  LookUpClasses();
}

}  // namespace riffledb::python
