#include "tests/server/security/test_certificates.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace unet::testing {
namespace fs = std::filesystem;

namespace {

void Run(const std::string& command) {
  ASSERT_EQ(std::system((command + " 2>/dev/null").c_str()), 0) << command;
}

}  // namespace

KeyPair MakeCertificateAuthority(const fs::path& dir, const std::string& name) {
  KeyPair ca{dir / (name + ".crt"), dir / (name + ".key")};
  Run(absl::StrCat(
      "openssl req -x509 -newkey ec -pkeyopt "
      "ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=",
      name, " -keyout ", ca.key.string(), " -out ", ca.cert.string()));
  return ca;
}

KeyPair MakeLeafCertificate(const fs::path& dir, const std::string& name,
                            const KeyPair& ca) {
  KeyPair leaf{dir / (name + ".crt"), dir / (name + ".key")};
  const fs::path request = dir / (name + ".csr");
  const fs::path extensions = dir / (name + ".ext");
  std::ofstream(extensions) << "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                               "extendedKeyUsage=serverAuth,clientAuth\n";
  Run(absl::StrCat(
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
      "-nodes -subj /CN=",
      name, " -keyout ", leaf.key.string(), " -out ", request.string()));
  Run(absl::StrCat("openssl x509 -req -days 2 -in ", request.string(), " -CA ",
                   ca.cert.string(), " -CAkey ", ca.key.string(),
                   " -CAcreateserial -extfile ", extensions.string(), " -out ",
                   leaf.cert.string()));
  return leaf;
}

void SwapDirectoryLink(const fs::path& link, const fs::path& target) {
  const fs::path staged = link.string() + ".new";
  fs::remove(staged);
  fs::create_directory_symlink(target, staged);
  fs::rename(staged, link);
}

}  // namespace unet::testing
