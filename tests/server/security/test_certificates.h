#ifndef TESTS_SERVER_SECURITY_TEST_CERTIFICATES_H_
#define TESTS_SERVER_SECURITY_TEST_CERTIFICATES_H_

// Certificates for TLS tests, made with the `openssl` command in a
// directory of the test's: a CA, and leaves it signs.

#include <filesystem>
#include <string>

namespace unet::testing {

struct KeyPair {
  std::filesystem::path cert, key;
};

// Makes a self-signed CA `name` in `dir` (name.crt, name.key).
KeyPair MakeCertificateAuthority(const std::filesystem::path& dir,
                                 const std::string& name);

// Makes `name` in `dir` signed by `ca`, for localhost and 127.0.0.1, usable
// by servers and clients.
KeyPair MakeLeafCertificate(const std::filesystem::path& dir,
                            const std::string& name, const KeyPair& ca);

// Points the symbolic link `link` at `target` in one step, the way
// docs/deployment.md tells operators to rotate a certificate and its key
// together (and Kubernetes updates a mounted Secret): a new link made beside
// it is renamed over it.
void SwapDirectoryLink(const std::filesystem::path& link,
                       const std::filesystem::path& target);

}  // namespace unet::testing

#endif  // TESTS_SERVER_SECURITY_TEST_CERTIFICATES_H_
