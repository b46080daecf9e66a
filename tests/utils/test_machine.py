from tf_asgan.utils import machine


def test_cpu_description_names_the_model_and_the_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: Some CPU\nflags\t\t: fpu avx512f avx512_bf16\n")
    text = machine.cpu_description(str(info))
    assert text.startswith("Some CPU") and "avx512_bf16 yes" in text and "amx_bf16 no" in text
    assert "avx512f yes" in text and "avx512_fp16 no" in text


def test_an_unreadable_cpuinfo_gives_no_flags(tmp_path):
    name, flags = machine.cpu_info(str(tmp_path / "missing"))
    assert flags == set() and name


def test_description_records_the_thread_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    monkeypatch.delenv("TF_NUM_INTEROP_THREADS", raising=False)
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: Some CPU\nflags\t\t: fpu\n")
    got = machine.description(str(info))
    assert got["threads"]["TF_NUM_INTRAOP_THREADS"] == "1"
    assert got["threads"]["TF_NUM_INTEROP_THREADS"] is None
    assert got["cpu"].startswith("Some CPU")


def test_summary_says_the_threads_set_or_the_defaults():
    record = {"cpu": "Some CPU", "threads": {"TF_NUM_INTRAOP_THREADS": "1",
                                             "TF_NUM_INTEROP_THREADS": None}}
    assert machine.summary(record) == "Some CPU; threads TF_NUM_INTRAOP_THREADS=1"
    assert machine.summary({"cpu": "X", "threads": {"OMP_NUM_THREADS": None}}) == \
        "X; threads TensorFlow's defaults"
    assert machine.header(record, "2.21.0") == (
        "Machine: Some CPU; threads TF_NUM_INTRAOP_THREADS=1; TensorFlow 2.21.0")
