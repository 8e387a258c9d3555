// UniqueFunction: a callable that owns what it captures and can only be
// moved, like C++23's std::move_only_function. Connection handlers use it so
// that a handler can own the ConnectionPtr it continues with (a lambda
// capturing a unique_ptr is not copyable, so std::function cannot hold it).
#pragma once

#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

namespace zrelay {

template <typename Signature>
class UniqueFunction;

template <typename R, typename... Args>
class UniqueFunction<R(Args...)> {
 public:
  UniqueFunction() = default;
  UniqueFunction(std::nullptr_t) {}  // NOLINT: implicit, as std::function's
  template <typename F,
            typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, UniqueFunction> &&
                                        std::is_invocable_r_v<R, std::decay_t<F>&, Args...>>>
  UniqueFunction(F&& f) {  // NOLINT: implicit, so a lambda converts as to std::function
    // An empty std::function (or null pointer) makes an empty UniqueFunction.
    if constexpr (IsNullable<std::decay_t<F>>::value) {
      if (!f) return;
    }
    callable_ = std::make_unique<Model<std::decay_t<F>>>(std::forward<F>(f));
  }
  UniqueFunction(UniqueFunction&&) noexcept = default;
  UniqueFunction& operator=(UniqueFunction&&) noexcept = default;

  explicit operator bool() const { return callable_ != nullptr; }
  R operator()(Args... args) { return callable_->Call(std::forward<Args>(args)...); }

 private:
  template <typename F>
  struct IsNullable : std::is_pointer<F> {};
  template <typename S>
  struct IsNullable<std::function<S>> : std::true_type {};

  struct Concept {
    virtual ~Concept() = default;
    virtual R Call(Args&&... args) = 0;
  };
  template <typename F>
  struct Model final : Concept {
    template <typename G>
    explicit Model(G&& g) : f(std::forward<G>(g)) {}
    R Call(Args&&... args) override { return std::invoke(f, std::forward<Args>(args)...); }
    F f;
  };
  std::unique_ptr<Concept> callable_;
};

}  // namespace zrelay
