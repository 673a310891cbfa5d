// Bindings for riffledb::remote::Server (`riffledb serve`).
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>

#include <memory>

#include "bindings.h"
#include "errors.h"
#include "riffledb/remote/client/http_client.h"
#include "riffledb/remote/server.h"
#include "riffledb/util/busy_poll.h"

namespace nb = nanobind;

namespace riffledb::python {

void RegisterRemote(nb::module_& m) {
  // Process-wide malloc settings for a serving process (see server.h).
  m.def("tune_allocator_for_serving", &remote::TuneAllocatorForServing);
  // How many threads of this process may busy-poll at once (0: none, one usable CPU).
  m.def("busy_poll_max_spinners", &BusyPoll::MaxSpinners);
  // The default busy-polls, in µs: the server's, and the client's (in a process that
  // connected for itself).
  m.attr("DEFAULT_SERVE_BUSY_POLL_US") = remote::ServerOptions{}.busy_poll_us;
  m.attr("DEFAULT_SERVE_HEAD_TIMEOUT_MS") = remote::ServerOptions{}.head_timeout_ms;
  m.attr("DEFAULT_CLIENT_BUSY_POLL_US") = remote::ClientOptions{}.busy_poll_us;
  // Serves a database until stopped. Construct it to start it: it listens at once.
  nb::class_<remote::Server>(m, "Server")
      .def_static(
          "start",
          [](std::shared_ptr<Database> db, const std::string& host, int port,
             const std::string& api_key, int threads, int64_t max_body_bytes,
             int64_t max_decoded_bytes, const std::string& tls_cert,
             const std::string& tls_key, int busy_poll_us,
             int64_t version_check_interval_ms, int head_timeout_ms) {
            remote::ServerOptions options;
            options.host = host;
            options.port = port;
            options.api_key = api_key;
            options.threads = threads;
            options.max_body_bytes = max_body_bytes;
            options.service.max_decoded_bytes = max_decoded_bytes;
            options.tls_cert_path = tls_cert;
            options.tls_key_path = tls_key;
            options.busy_poll_us = busy_poll_us;
            options.service.version_check_interval_ms = version_check_interval_ms;
            options.head_timeout_ms = head_timeout_ms;
            return ValueOrThrow(WithoutGil([&] {
              return remote::Server::Start(std::move(db), std::move(options));
            }));
          },
          nb::arg("db"), nb::arg("host"), nb::arg("port"), nb::arg("api_key"),
          nb::arg("threads"), nb::arg("max_body_bytes"),
          nb::arg("max_decoded_bytes") = remote::ServiceOptions{}.max_decoded_bytes,
          nb::arg("tls_cert") = "", nb::arg("tls_key") = "",
          nb::arg("busy_poll_us") = remote::ServerOptions{}.busy_poll_us,
          // -1: 0 for a directory, 1,000 on object storage (service.h).
          nb::arg("version_check_interval_ms") =
              remote::ServiceOptions::kAutoVersionCheck,
          nb::arg("head_timeout_ms") = remote::ServerOptions{}.head_timeout_ms)
      .def("stats",
           [](const remote::Server& server) {
             const remote::Server::Stats s = server.stats();
             nb::dict d;
             d["busy_polls"] = s.busy_polls;
             d["busy_poll_hits"] = s.busy_poll_hits;
             return d;
           })
      .def_prop_ro("port", &remote::Server::port)
      .def_prop_ro("version_check_interval_ms",
                   &remote::Server::version_check_interval_ms)
      .def_prop_ro("host", [](const remote::Server& s) { return s.options().host; })
      // "https" when serving TLS, else "http".
      .def_prop_ro("scheme", &remote::Server::scheme)
      // Stops gracefully: requests already received are answered, then it returns.
      .def("stop", [](remote::Server& s) { WithoutGil([&] { s.Stop(); }); })
      // True once stopped; waits up to `timeout` seconds (forever if None).
      .def(
          "wait",
          [](const remote::Server& s, std::optional<double> timeout) {
            std::optional<int64_t> ms;
            if (timeout) ms = static_cast<int64_t>(*timeout * 1000);
            return WithoutGil([&] { return s.Wait(ms); });
          },
          nb::arg("timeout").none() = nb::none());
}

}  // namespace riffledb::python
