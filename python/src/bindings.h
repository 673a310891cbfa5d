// Registration functions, one per binding file.
#pragma once

#include <arrow/record_batch.h>
#include <nanobind/nanobind.h>

#include <memory>

namespace riffledb::python {

/// The one result type of every read: a batch that Python turns into the format it wants
/// (registered as `Batch` by RegisterPermutationReader).
struct Batch {
  std::shared_ptr<arrow::RecordBatch> batch;
};

void RegisterErrors(nanobind::module_& m);
void RegisterArrow(nanobind::module_& m);
void RegisterDatabase(nanobind::module_& m);
void RegisterTable(nanobind::module_& m);
void RegisterPermutationBuilder(nanobind::module_& m);
void RegisterPermutationReader(nanobind::module_& m);
void RegisterLoader(nanobind::module_& m);
void RegisterRemote(nanobind::module_& m);
void RegisterRemoteClient(nanobind::module_& m);

}  // namespace riffledb::python
