"""Bug signatures: the same fault seen on other shapes, names or dtypes is one bug;
different faults stay apart."""

from reports.signature import normalize_message, sign

CPP = ("CppCompileError: C++ compile error: no matching function for call to "
       "‘min_masked_reduce(at::vec::CPU_CAPABILITY::VecMask<float, 1>&, at::vec::CPU_CAPABILITY::VecMask<{t}>&, int64_t)’")


def test_a_missing_cpp_overload_at_other_operand_types_is_one_bug():
    msgs = [CPP.format(t=t) for t in ("int, 1", "long int, 2", "double, 2")]
    sigs = {sign("crash", "torch.compile", "compile", m, ["torch.amin", "torch.ge"]).digest for m in msgs}
    assert len(sigs) == 1
    assert normalize_message(msgs[0]).endswith("no matching function for call to ‘min_masked_reduce(?)’")


def test_another_missing_overload_is_another_bug():
    a = sign("crash", "torch.compile", "compile", CPP.format(t="int, 1"), [])
    b = sign("crash", "torch.compile", "compile", CPP.format(t="int, 1").replace("min_masked", "max_masked"), [])
    assert a.digest != b.digest


def test_numbers_addresses_and_buffer_names_are_incidental():
    a = normalize_message("RuntimeError: shape [2, 3] at 0x7f00 for buf12 is invalid (2, 3)")
    b = normalize_message("RuntimeError: shape [5] at 0xdead for buf3 is invalid (5,)")
    assert a == b and "buf?" in a and "[?]" in a and "(?)" in a


def test_template_arguments_outside_cpp_errors_are_kept():
    assert "Vectorized<float>" in normalize_message("RuntimeError: expected Vectorized<float>")


def test_kind_backend_and_stage_tell_bugs_apart():
    base = sign("crash", "torch.compile", "compile", "RuntimeError: boom", [])
    assert base.digest != sign("crash", "torch.compile", "run", "RuntimeError: boom", []).digest
    assert base.digest != sign("crash", "torch.jit", "compile", "RuntimeError: boom", []).digest
    assert sign("abort", "x", "compile", "SIGABRT", ["a"]).digest == sign("abort", "x", "compile", "SIGSEGV", ["b"]).digest


def test_nested_template_arguments_collapse_whole():
    a = normalize_message("CppCompileError: C++ compile error: no match for std::vector<std::pair<int, float>>")
    b = normalize_message("CppCompileError: C++ compile error: no match for std::vector<double>")
    assert a == b and a.endswith("std::vector<?>")
