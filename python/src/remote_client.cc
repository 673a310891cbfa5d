// Bindings for riffledb::remote::HttpClient, the pid-aware client of db:// tables.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "arrow_bridge.h"
#include "bindings.h"
#include "errors.h"
#include "riffledb/remote/client/http_client.h"
#include "riffledb/remote/client/remote_take_source.h"

namespace nb = nanobind;

namespace riffledb::python {

namespace {

bool InterpreterIsGone() {
#if PY_VERSION_HEX >= 0x030D0000
  return !Py_IsInitialized() || Py_IsFinalizing();
#else
  return !Py_IsInitialized() || _Py_IsFinalizing();
#endif
}

// A Python `header_provider` as a header_source (RemoteTableOptions, HttpRequest):
// called on whichever thread sends an attempt (a prefetch thread, a DataLoader worker),
// so it takes the GIL for the call, and for dropping its reference (the last copy of the
// source may die on a thread without the GIL). Once the interpreter is finalizing, the
// reference is leaked and calls fail: nothing may run Python then.
//
// With `keep_error` (one synchronous call, whose caller rethrows), the provider's own
// exception is kept for RethrowKept(): a call on the caller's behalf raises what the
// provider raised, as LanceDB's client does.
class PyHeaderSource {
 public:
  explicit PyHeaderSource(nb::handle provider, bool keep_error = false)
      : provider_(provider.inc_ref().ptr()), keep_error_(keep_error) {}
  PyHeaderSource(const PyHeaderSource&) = delete;
  PyHeaderSource& operator=(const PyHeaderSource&) = delete;
  ~PyHeaderSource() {
    if (InterpreterIsGone()) return;
    nb::gil_scoped_acquire gil;
    Py_DECREF(provider_);
  }

  arrow::Result<remote::HeaderList> operator()() const {
    if (InterpreterIsGone()) {
      return arrow::Status::Cancelled("The header_provider cannot be called: the ",
                                      "Python interpreter is shutting down");
    }
    nb::gil_scoped_acquire gil;
    try {
      nb::object headers = nb::handle(provider_).attr("get_headers")();
      remote::HeaderList out;
      for (nb::handle item : headers.attr("items")()) {
        out.emplace_back(nb::cast<std::string>(nb::str(item[0])),
                         nb::cast<std::string>(nb::str(item[1])));
      }
      return out;
    } catch (nb::python_error& e) {
      const std::string kind =
          nb::cast<std::string>(nb::handle(e.type()).attr("__name__"));
      const std::string words = nb::cast<std::string>(nb::str(e.value()));
      if (keep_error_) {  // after the message: a moved-from error is empty
        kept_.reset();
        kept_.emplace(std::move(e));
      }
      return arrow::Status::Invalid("The header_provider's get_headers() raised ", kind,
                                    ": ", words);
    } catch (const std::exception& e) {
      return arrow::Status::Invalid("The header_provider's get_headers() did not give ",
                                    "a mapping of strings: ", e.what());
    }
  }

  // Raises the provider's exception kept by a failed call, if any (with the GIL).
  void RethrowKept() {
    if (!kept_) return;
    nb::python_error error = std::move(*kept_);
    kept_.reset();
    throw error;
  }

 private:
  PyObject* provider_;
  const bool keep_error_;
  // One request's calls are sequential: no lock.
  mutable std::optional<nb::python_error> kept_;
};

// The header source of one synchronous request (None: none).
std::shared_ptr<PyHeaderSource> RequestHeaderSource(nb::handle provider) {
  if (provider.is_none()) return nullptr;
  return std::make_shared<PyHeaderSource>(provider, /*keep_error=*/true);
}

// Runs `send` without the GIL; a failure caused by the provider raises the provider's
// own exception.
template <typename Fn>
auto SendWithProvider(const std::shared_ptr<PyHeaderSource>& source, Fn&& send) {
  auto result = WithoutGil(std::forward<Fn>(send));
  if (!result.ok() && source != nullptr) source->RethrowKept();
  return ValueOrThrow(std::move(result));
}

}  // namespace

void RegisterRemoteClient(nb::module_& m) {
  // One connection's HTTP client (riffledb.remote.db builds it from ClientConfig).
  nb::class_<remote::HttpClient>(m, "RemoteClient")
      .def_static(
          "make",
          [](const std::string& base_url, remote::HeaderList headers,
             double connect_timeout, double read_timeout, std::optional<double> timeout,
             double pool_idle_timeout, int retries, int connect_retries, int read_retries,
             double backoff_factor, double backoff_jitter, std::vector<int> statuses,
             bool verify_tls, const std::string& ca_cert_path, int64_t busy_poll_us,
             int64_t forked_busy_poll_us) {
            remote::ClientOptions options;
            options.base_url = base_url;
            options.headers = std::move(headers);
            options.connect_timeout_s = connect_timeout;
            options.read_timeout_s = read_timeout;
            options.timeout_s = timeout;
            options.pool_idle_timeout_s = pool_idle_timeout;
            options.retry.retries = retries;
            options.retry.connect_retries = connect_retries;
            options.retry.read_retries = read_retries;
            options.retry.backoff_factor = backoff_factor;
            options.retry.backoff_jitter = backoff_jitter;
            options.retry.statuses = std::move(statuses);
            options.verify_tls = verify_tls;
            options.ca_cert_path = ca_cert_path;
            options.busy_poll_us = busy_poll_us;
            options.forked_busy_poll_us = forked_busy_poll_us;
            return ValueOrThrow(remote::HttpClient::Make(std::move(options)));
          },
          nb::arg("base_url"), nb::arg("headers"), nb::arg("connect_timeout"),
          nb::arg("read_timeout"), nb::arg("timeout").none(),
          nb::arg("pool_idle_timeout"), nb::arg("retries"), nb::arg("connect_retries"),
          nb::arg("read_retries"), nb::arg("backoff_factor"), nb::arg("backoff_jitter"),
          nb::arg("statuses"), nb::arg("verify_tls"), nb::arg("ca_cert_path"),
          nb::arg("busy_poll_us"), nb::arg("forked_busy_poll_us"))
      // Sends one request (retried if `retry`; the `header_provider`'s headers asked
      // for before each attempt, replacing the client's) with the GIL released; returns
      // (status, headers with lower-case names, body, request id) of a 2xx response, and
      // raises riffledb.remote.errors.HttpError / RetryError otherwise (or what the
      // provider raised).
      .def(
          "send",
          [](const remote::HttpClient& client, const std::string& method,
             const std::string& path, std::optional<nb::bytes> body,
             const std::string& content_type, bool retry, nb::object header_provider) {
            remote::HttpRequest request;
            request.method = method;
            request.path = path;
            if (body) request.body.assign(body->c_str(), body->size());
            request.content_type = content_type;
            request.retry = retry;
            auto source = RequestHeaderSource(header_provider);
            if (source) request.header_source = [source] { return (*source)(); };
            remote::HttpResponse response =
                SendWithProvider(source, [&] { return client.Send(std::move(request)); });
            nb::dict reply_headers;
            for (const auto& [name, value] : response.headers) {
              reply_headers[nb::str(name.c_str(), name.size())] =
                  nb::str(value.c_str(), value.size());
            }
            return nb::make_tuple(response.status, reply_headers,
                                  nb::bytes(response.body.data(), response.body.size()),
                                  nb::str(response.request_id.c_str()));
          },
          nb::arg("method"), nb::arg("path"), nb::arg("body").none(),
          nb::arg("content_type"), nb::arg("retry"),
          nb::arg("header_provider").none() = nb::none())
      // This process's counters: requests, connections, reused, abandoned_fds,
      // abandoned_conns, busy_polls, busy_poll_hits.
      .def("stats", [](const remote::HttpClient& client) {
        remote::ClientStats s = client.stats();
        nb::dict d;
        d["requests"] = s.requests;
        d["connections"] = s.connections;
        d["reused"] = s.reused;
        d["abandoned_fds"] = s.abandoned_fds;
        d["abandoned_conns"] = s.abandoned_conns;
        d["busy_polls"] = s.busy_polls;
        d["busy_poll_hits"] = s.busy_poll_hits;
        return d;
      });

  // One take from a remote table (remote::TakeRemoteRows), without its schema: the rows
  // of `keys` (uint64 offsets, or row ids if `by_row_id`), in that order, as a
  // pa.RecordBatch of the server's columns. The request is sent without the GIL.
  m.def(
      "remote_take",
      [](const remote::HttpClient& client, const std::string& name,
         const std::string& table_path, std::optional<uint64_t> version,
         nb::ndarray<const uint64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu> keys,
         bool by_row_id, std::vector<std::string> columns, bool with_row_id,
         nb::object header_provider, const std::string& table_id) {
        remote::RemoteTake take;
        take.name = name;
        take.table_path = table_path;
        take.version = version;
        take.table_id = table_id;
        take.by_row_id = by_row_id;
        take.columns = std::move(columns);
        take.with_row_id = with_row_id;
        auto source = RequestHeaderSource(header_provider);
        if (source) take.header_source = [source] { return (*source)(); };
        const std::span<const uint64_t> wanted(keys.data(), keys.shape(0));
        auto batch = SendWithProvider(
            source, [&] { return remote::TakeRemoteRows(client, take, wanted); });
        return ExportBatch(batch);
      },
      nb::arg("client"), nb::arg("name"), nb::arg("table_path"),
      nb::arg("version").none(), nb::arg("keys"), nb::arg("by_row_id"),
      nb::arg("columns"), nb::arg("with_row_id"),
      nb::arg("header_provider").none() = nb::none(), nb::arg("table_id") = "");

  // One version of a remote table as a source of permutation reads (a
  // PermutationReader.open base). `open` asks for the schema and the row count.
  nb::class_<remote::RemoteTakeSource, TakeSource>(m, "RemoteTakeSource")
      .def_static(
          "open",
          [](std::shared_ptr<remote::HttpClient> client, const std::string& name,
             const std::string& table_path, std::optional<uint64_t> version,
             remote::HeaderList headers, int64_t max_keys_per_request,
             nb::object header_provider, const std::string& table_id) {
            remote::RemoteTableOptions options;
            options.name = name;
            options.table_path = table_path;
            options.version = version;
            options.table_id = table_id;
            options.headers = std::move(headers);
            if (!header_provider.is_none()) {
              auto source = std::make_shared<const PyHeaderSource>(header_provider);
              options.header_source = [source] { return (*source)(); };
            }
            options.max_keys_per_request = max_keys_per_request;
            return std::const_pointer_cast<remote::RemoteTakeSource>(
                ValueOrThrow(WithoutGil([&] {
                  return remote::RemoteTakeSource::Open(std::move(client),
                                                        std::move(options));
                })));
          },
          nb::arg("client"), nb::arg("name"), nb::arg("table_path"),
          nb::arg("version").none(), nb::arg("headers") = remote::HeaderList{},
          nb::arg("max_keys_per_request") = 8192, nb::arg("header_provider") = nb::none(),
          nb::arg("table_id") = "")
      .def_prop_ro("version",
                   [](const remote::RemoteTakeSource& s) { return s.options().version; });
}

}  // namespace riffledb::python
