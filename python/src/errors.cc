#include "errors.h"

#include <Python.h>

#include <string>

#include "bindings.h"

namespace nb = nanobind;

namespace riffledb::python {

void RaiseStatus(const arrow::Status& status) {
  PyObject* type = PyExc_RuntimeError;
  switch (status.code()) {
    case arrow::StatusCode::Invalid:
    case arrow::StatusCode::SerializationError:
      type = PyExc_ValueError;
      break;
    case arrow::StatusCode::KeyError:
      type = PyExc_KeyError;
      break;
    case arrow::StatusCode::IndexError:
      type = PyExc_IndexError;
      break;
    case arrow::StatusCode::IOError:
      type = PyExc_OSError;
      break;
    case arrow::StatusCode::NotImplemented:
      type = PyExc_NotImplementedError;
      break;
    case arrow::StatusCode::TypeError:
      type = PyExc_TypeError;
      break;
    case arrow::StatusCode::CapacityError:
    case arrow::StatusCode::OutOfMemory:
      type = PyExc_MemoryError;
      break;
    case arrow::StatusCode::Cancelled:
      type = PyExc_KeyboardInterrupt;
      break;
    default:
      break;
  }
  PyErr_SetString(type, status.message().c_str());
  throw nb::python_error();
}

void RegisterErrors(nb::module_& m) {}

}  // namespace riffledb::python
