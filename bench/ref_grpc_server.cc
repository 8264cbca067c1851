// ref_grpc_server: the reference server of bench/run.sh. A stock gRPC C++
// server (Debian libgrpc++-dev) whose only service is gRPC's own default
// health service, so grpc.health.v1.Health/Check is the same tiny method the
// hostagent serves inline on its loop. It listens on a TLS port and an
// insecure (h2c) port; port 0 lets the kernel choose, and the chosen ports
// are printed on one "ready tls_port=N h2c_port=N" line on stdout so the
// harness can read them back. It runs until SIGINT/SIGTERM.
#include <grpcpp/grpcpp.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/health_check_service_interface.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <unistd.h>

namespace {

bool read_file(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

void usage() {
  std::fprintf(stderr,
               "usage: ref_grpc_server [--tls HOST:PORT --cert PEM --key PEM] "
               "[--h2c HOST:PORT]\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string tls_addr, h2c_addr, cert_path, key_path;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (i + 1 >= argc) {
      usage();
      return 2;
    }
    if (a == "--tls") {
      tls_addr = argv[++i];
    } else if (a == "--h2c") {
      h2c_addr = argv[++i];
    } else if (a == "--cert") {
      cert_path = argv[++i];
    } else if (a == "--key") {
      key_path = argv[++i];
    } else {
      usage();
      return 2;
    }
  }
  if (tls_addr.empty() && h2c_addr.empty()) {
    usage();
    return 2;
  }

  // Block the stop signals before gRPC starts its threads so that they all
  // inherit the mask and sigwait() below is the only place they land.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // gRPC refuses to start a server without a frequently polled completion
  // queue, and the default health service is only added at Start(). A
  // callback generic service (its default reactor answers UNIMPLEMENTED, as a
  // server without it would) gives the server its callback queue, which is
  // also the one the callback-based health service runs on.
  grpc::CallbackGenericService unimplemented;
  builder.RegisterCallbackGenericService(&unimplemented);
  int tls_port = 0, h2c_port = 0;
  if (!tls_addr.empty()) {
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    if (!read_file(cert_path, &pair.cert_chain) || !read_file(key_path, &pair.private_key)) {
      std::fprintf(stderr, "ref_grpc_server: cannot read --cert %s / --key %s\n",
                   cert_path.c_str(), key_path.c_str());
      return 1;
    }
    grpc::SslServerCredentialsOptions opts;
    opts.pem_key_cert_pairs.push_back(pair);
    builder.AddListeningPort(tls_addr, grpc::SslServerCredentials(opts), &tls_port);
  }
  if (!h2c_addr.empty()) {
    builder.AddListeningPort(h2c_addr, grpc::InsecureServerCredentials(), &h2c_port);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || (!tls_addr.empty() && tls_port == 0) || (!h2c_addr.empty() && h2c_port == 0)) {
    std::fprintf(stderr, "ref_grpc_server: cannot listen (tls %s, h2c %s)\n", tls_addr.c_str(),
                 h2c_addr.c_str());
    return 1;
  }
  std::printf("ready tls_port=%d h2c_port=%d\n", tls_port, h2c_port);
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop, &sig);
  server->Shutdown();
  return 0;
}
