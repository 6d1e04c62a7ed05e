// Code packages; see code_package.h.
#include "worker/code_package.h"

#include <dlfcn.h>

#include <algorithm>
#include <filesystem>

#include "common/file_util.h"
#include "lumen/internal/registry.h"
#include "rpc/rpc.h"

namespace lumen::worker {

CodePackage CollectCodePackage(const std::vector<std::string>& extra_files) {
  CodePackage package;
  auto add = [&](const std::string& path) {
    if (std::find(package.files.begin(), package.files.end(), path) == package.files.end()) {
      package.files.push_back(path);
    }
  };
  for (const auto& f : extra_files) {
    std::error_code ec;
    auto canonical = std::filesystem::canonical(f, ec);
    add(ec ? f : canonical.string());
  }
  for (const internal::FunctionInfo* fn : internal::AllFunctions()) {
    std::string file = ObjectFileOf(fn->anchor);
    if (file.empty()) continue;
    std::error_code ec;
    bool is_executable =
        std::filesystem::equivalent(file, std::filesystem::read_symlink("/proc/self/exe", ec), ec);
    if (is_executable) {
      package.driver_only.insert(fn->name);
    } else {
      add(file);
    }
  }
  return package;
}

absl::StatusOr<std::vector<proto::CodeFile>> UploadCodePackage(
    rpc::GcsClient* gcs, const std::vector<std::string>& files) {
  std::vector<proto::CodeFile> out;
  for (const auto& path : files) {
    auto content = ReadFile(path);
    if (!content.ok()) return Annotate(content.status(), "code package");
    proto::CodeFile f;
    f.set_name(std::filesystem::path(path).filename().string());
    f.set_digest(Sha256Hex(*content));
    f.set_size(static_cast<int64_t>(content->size()));
    proto::KvExistsRequest exists;
    exists.set_ns(rpc::kCodeKvNamespace);
    exists.set_key(f.digest());
    auto there = rpc::CallSync<proto::KvExistsReply>(
        [&](auto cb) { gcs->KvExists(exists, cb, {.timeout_ms = 10'000}); });
    if (!there.ok()) return Annotate(there.status(), "cannot upload the code package");
    if (!there->exists()) {
      proto::KvPutRequest put;
      put.set_ns(rpc::kCodeKvNamespace);
      put.set_key(f.digest());
      put.set_value(std::move(*content));
      auto stored = rpc::CallSync<proto::KvPutReply>(
          [&](auto cb) { gcs->KvPut(put, cb, {.timeout_ms = 120'000}); });
      if (!stored.ok()) return Annotate(stored.status(), "cannot upload " + path);
    }
    out.push_back(std::move(f));
  }
  return out;
}

absl::Status LoadCodePackage(const std::vector<std::string>& files) {
  for (const auto& path : files) {
    if (::dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
      const char* err = ::dlerror();
      return absl::FailedPreconditionError("cannot load " + path + ": " +
                                           (err ? err : "unknown error") +
                                           ". If it needs other libraries, list them in "
                                           "Config::code_paths (they load first)");
    }
  }
  return absl::OkStatus();
}

}  // namespace lumen::worker
