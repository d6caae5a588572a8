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


# ---- the ATen level ----------------------------------------------------------------------

def mismatch(api, aten=(), dtype="float32"):
    return sign("mismatch", "torch.compile", "run", "output 0 differs", [api, "core.Sin"], api, aten, dtype)


def test_one_aten_op_reached_through_different_apis_is_one_mismatch():
    add = ("aten.add.Tensor",)
    assert mismatch("core.Add", add).digest == mismatch("core.LayerNorm", add, "float64").digest
    assert mismatch("core.Add", add).operators == add
    assert mismatch("core.Add", add).digest != mismatch("core.Add", ("aten.mul.Tensor",)).digest
    # without ATen ops the API operator decides, as before
    assert mismatch("core.Add").digest != mismatch("core.LayerNorm").digest
    assert mismatch("core.Add").digest != mismatch("core.Add", add).digest


def test_the_dtype_class_of_an_aten_mismatch_tells_kernels_apart():
    add = ("aten.add.Tensor",)
    digest = {d: mismatch("core.Add", add, d).digest for d in ("float16", "bfloat16", "float32", "int8", "uint8", "bool")}
    assert digest["float16"] == digest["bfloat16"] and digest["int8"] == digest["uint8"]
    assert len({digest["float16"], digest["float32"], digest["int8"], digest["bool"]}) == 4


def test_a_crash_naming_no_operator_is_told_apart_by_its_aten_ops():
    msg = "RuntimeError: planted: lowering failed"
    exp = sign("crash", "torch.compile", "compile", msg, ["core.Exp"], aten_ops=("aten.exp.default",))
    sin = sign("crash", "torch.compile", "compile", msg, ["core.Sin"], aten_ops=("aten.sin.default",))
    assert exp.digest != sin.digest and exp.operators == ("aten.exp.default",)
    # a message that names an operator keeps it: the ATen ops add nothing
    named = sign("crash", "torch.compile", "compile", "RuntimeError: exp failed", ["core.Exp"],
                 aten_ops=("aten.exp.default",))
    assert named.operators == ("core.Exp",)


def test_one_api_under_several_partial_operators_is_one_bug():
    from reports.signature import sign

    a = sign("mismatch", "torch.compile", "run", "", ["torch.argmin#b142", "core.Add"], culprit_op="torch.argmin#b142")
    b = sign("mismatch", "torch.compile", "run", "", ["torch.argmin#8cfc/2"], culprit_op="torch.argmin#8cfc/2")
    assert a.digest == b.digest and a.operators == ("torch.argmin",)
    crash = sign("crash", "torch.compile", "compile", "RuntimeError: grid_sampler_2d: bad mode",
                 ["torch.grid_sampler_2d#test", "core.Add"])
    assert crash.operators == ("torch.grid_sampler_2d",)


def test_one_autograd_error_at_two_dtypes_and_truncations_is_one_signature():
    """aot_eager seed 7: one input-mutation autograd error for a float64 [1] and a float32
    [1, 1, 11, 13] tensor, each message cut at a fixed length: two folders, one cause."""
    from reports.signature import normalize_message

    template = ("RuntimeError: one of the variables needed for gradient computation has been modified by an "
                "inplace operation: [torch.{} {}], which is output 0 of torch::autograd::CopyBackwards, is at "
                "version 1; expected version 0 instead. Hint: enable anomaly detection to find the operation that "
                "failed to compute its gradient")
    a = template.format("DoubleTensor", "[1]")[:300] + "..."
    b = template.format("FloatTensor", "[1, 1, 11, 13]")[:300] + "..."
    assert a != b and normalize_message(a) == normalize_message(b)
    assert normalize_message(a).endswith("expected version N instead.")
    assert normalize_message(template.format("LongTensor", "[1]")) != normalize_message(a)
