#include "tools/cli/flag_set.h"

#include <set>

#include "tools/cli/values.h"

namespace zrelay {

FlagSet::FlagSet(CLI::App& app, Repeats repeats) : app_(app), repeats_(repeats) {
  app_.allow_extras();  // leftovers are reported by Parse, in our wording
}

CLI::Option* FlagSet::Value(const std::string& name, const std::string& type,
                            const std::string& help, Setter set) {
  Flag& flag = flags_.emplace_back();
  CLI::Option* option = app_.add_option_function<std::string>(
      name,
      [&flag, set](const std::string& text) {
        Status s = set(text);
        if (!s.ok()) {
          flag.error = Error::Invalid(flag.option->get_name() + ": " + s.error().message());
        }
      },
      help);
  // Repeats are checked by Parse; each occurrence is in app_.parse_order().
  option->type_name(type)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  flag.option = option;
  return option;
}

CLI::Option* FlagSet::Bool(const std::string& name, bool* field, const std::string& help,
                           bool inverted) {
  Flag& flag = flags_.emplace_back();
  flag.field = field;
  flag.inverted = inverted;
  CLI::Option* option =
      app_.add_flag(name, flag.text, help)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  flag.option = option;
  return option;
}

const FlagSet::Flag* FlagSet::Find(const CLI::Option* option) const {
  for (const Flag& flag : flags_) {
    if (flag.option == option) return &flag;
  }
  return nullptr;
}

Status FlagSet::Parse(const std::vector<std::string>& args, const UnknownFlag& unknown_flag) {
  // CLI11 reads "--json=" as a bare "--json"; an empty value is as wrong as
  // any other that is not a boolean.
  for (const std::string& arg : args) {
    if (arg.size() <= 3 || arg.rfind("--", 0) != 0 || arg.back() != '=') continue;
    std::string name = arg.substr(2, arg.size() - 3);
    for (const Flag& flag : flags_) {
      if (flag.field != nullptr && flag.option->check_lname(name)) {
        return Error::Invalid("--" + name + ": " + ParseBool("").error().message());
      }
    }
  }
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 pops from the back
  try {
    app_.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return Error::Invalid(e.what());
  }
  if (Status s = CheckLeftovers(unknown_flag); !s.ok()) return s;
  if (Status s = CheckRepeats(); !s.ok()) return s;
  return CheckValues();
}

Status FlagSet::CheckLeftovers(const UnknownFlag& unknown_flag) const {
  std::vector<std::string> left = app_.remaining();
  if (left.empty()) return Status::Ok();
  const std::string& arg = left[0];
  if (arg.size() < 2 || arg[0] != '-' || arg == "--") {
    return Error::Invalid("unexpected argument '" + arg +
                          "' (a value follows its flag; a boolean flag takes one only as "
                          "--flag=VALUE)");
  }
  std::string flag = arg.substr(0, arg.find('='));
  std::string message = unknown_flag ? unknown_flag(flag) : "";
  return Error::Invalid(message.empty() ? "unknown flag '" + flag + "'" : message);
}

Status FlagSet::CheckRepeats() const {
  if (repeats_ == Repeats::kLastWins) return Status::Ok();
  std::set<const CLI::Option*> seen;
  for (const CLI::Option* option : app_.parse_order()) {
    if (!seen.insert(option).second) return Error::Invalid(option->get_name() + ": given twice");
  }
  return Status::Ok();
}

Status FlagSet::CheckValues() {
  for (const CLI::Option* option : app_.parse_order()) {
    const Flag* flag = Find(option);
    if (flag == nullptr) continue;  // added to the app directly
    if (!flag->error.ok()) return flag->error;
    if (flag->field == nullptr) continue;
    auto value = ParseBool(flag->text);
    if (!value.ok()) return Error::Invalid(option->get_name() + ": " + value.error().message());
  }
  for (const Flag& flag : flags_) {
    if (flag.field != nullptr && !flag.text.empty()) {
      *flag.field = ParseBool(flag.text).value() != flag.inverted;
    }
  }
  return Status::Ok();
}

}  // namespace zrelay
