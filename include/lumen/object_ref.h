// ObjectRef<T>: a reference to a value that lives in the cluster. Copies
// count as references; when the last reference anywhere is gone, the value
// is freed on every node. Thread-safe to copy and destroy, but not across
// Shutdown().
#pragma once

#include <utility>

#include "lumen/id.h"
#include "lumen/internal/runtime.h"

namespace lumen {

class ObjectRefBase {
 public:
  ObjectRefBase() = default;
  ObjectRefBase(const ObjectRefBase& other) : id_(other.id_) { Add(); }
  ObjectRefBase(ObjectRefBase&& other) noexcept : id_(other.id_) { other.id_ = ObjectId(); }
  ObjectRefBase& operator=(const ObjectRefBase& other) {
    if (this != &other) {
      Remove();
      id_ = other.id_;
      Add();
    }
    return *this;
  }
  ObjectRefBase& operator=(ObjectRefBase&& other) noexcept {
    if (this != &other) {
      Remove();
      id_ = other.id_;
      other.id_ = ObjectId();
    }
    return *this;
  }
  ~ObjectRefBase() { Remove(); }

  const ObjectId& ID() const { return id_; }
  bool IsNil() const { return id_.IsNil(); }
  friend bool operator==(const ObjectRefBase& a, const ObjectRefBase& b) { return a.id_ == b.id_; }

 protected:
  struct Adopt {};
  // Takes over a reference the runtime already counted.
  ObjectRefBase(const ObjectId& id, Adopt) : id_(id) {}

 private:
  void Add() {
    if (id_.IsNil()) return;
    if (auto* rt = internal::CurrentRuntime()) rt->AddLocalRef(id_);
  }
  void Remove() {
    if (id_.IsNil()) return;
    if (auto* rt = internal::CurrentRuntime()) rt->RemoveLocalRef(id_);
  }

  ObjectId id_;
};

template <typename T>
class ObjectRef : public ObjectRefBase {
 public:
  using ValueType = T;
  ObjectRef() = default;
  // For the runtime: adopts a reference it already counted.
  static ObjectRef<T> AdoptId(const ObjectId& id) { return ObjectRef<T>(id, Adopt()); }

 private:
  ObjectRef(const ObjectId& id, Adopt a) : ObjectRefBase(id, a) {}
};

template <typename T>
struct IsObjectRef : std::false_type {};
template <typename T>
struct IsObjectRef<ObjectRef<T>> : std::true_type {};

}  // namespace lumen
