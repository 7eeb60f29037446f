#include "server/observability/http_endpoints.h"

#include <CivetServer.h>

#include <functional>

#include "absl/strings/str_cat.h"

namespace unet {

// Answers GET on one URI with what `respond` returns.
class HttpEndpoints::Handler : public CivetHandler {
 public:
  struct Reply {
    int status;
    std::string content_type;
    std::string body;
  };

  explicit Handler(std::function<Reply()> respond)
      : respond_(std::move(respond)) {}

  bool handleGet(CivetServer*, mg_connection* connection) override {
    const Reply reply = respond_();
    mg_printf(connection,
              "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
              "Connection: close\r\n\r\n",
              reply.status, mg_get_response_code_text(connection, reply.status),
              reply.content_type.c_str(), reply.body.size());
    mg_write(connection, reply.body.data(), reply.body.size());
    return true;
  }

 private:
  const std::function<Reply()> respond_;
};

absl::StatusOr<std::unique_ptr<HttpEndpoints>> HttpEndpoints::Start(
    const std::string& address, int port, ServerMetrics& metrics,
    ScrapeSources sources, const std::atomic<bool>& ready) {
  std::unique_ptr<HttpEndpoints> endpoints(new HttpEndpoints());
  endpoints->metrics_handler_ =
      std::make_unique<Handler>([&metrics, sources = std::move(sources)] {
        return Handler::Reply{200, "text/plain; version=0.0.4; charset=utf-8",
                              metrics.Scrape(sources)};
      });
  endpoints->healthz_handler_ = std::make_unique<Handler>([] {
    return Handler::Reply{200, "text/plain", "ok\n"};
  });
  endpoints->readyz_handler_ = std::make_unique<Handler>([&ready] {
    return ready ? Handler::Reply{200, "text/plain", "ready\n"}
                 : Handler::Reply{503, "text/plain", "not ready\n"};
  });
  const std::vector<std::string> options = {
      "listening_ports", absl::StrCat(address, ":", port), "num_threads", "2"};
  try {
    endpoints->server_ = std::make_unique<CivetServer>(options);
  } catch (const CivetException& e) {
    return absl::UnavailableError(absl::StrCat(
        "cannot serve metrics on ", address, ":", port, ": ", e.what()));
  }
  endpoints->server_->addHandler("/metrics", *endpoints->metrics_handler_);
  endpoints->server_->addHandler("/healthz", *endpoints->healthz_handler_);
  endpoints->server_->addHandler("/readyz", *endpoints->readyz_handler_);
  const std::vector<int> ports = endpoints->server_->getListeningPorts();
  endpoints->port_ = ports.empty() ? 0 : ports.front();
  return endpoints;
}

HttpEndpoints::~HttpEndpoints() {
  // Stop serving before the handlers go away.
  server_.reset();
}

}  // namespace unet
