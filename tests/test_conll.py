import pytest

from xner.io.conll import ConllFormatError, read_conll, write_conll
from xner.types import Sentence


def write(tmp_path, text, name="f.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_write_roundtrip(tmp_path):
    path = write(tmp_path, "-DOCSTART- O\n\nEU B-ORG\nrejects O\n\n\nPeter B-PER\nBlackburn I-PER\n")
    sents = read_conll(path, lang="eng")
    assert [s.tokens for s in sents] == [("EU", "rejects"), ("Peter", "Blackburn")]
    assert sents[1].tags == ("B-PER", "I-PER") and sents[0].lang == "eng"
    out = tmp_path / "out" / "g.txt"
    write_conll(out, sents, [[["O", "O"], ["B-PER", "O"]]])
    assert out.read_text() == "EU B-ORG O\nrejects O O\n\nPeter B-PER B-PER\nBlackburn I-PER O\n\n"
    assert [s.tags for s in read_conll(out)] == [("O", "O"), ("B-PER", "O")]  # last column is the tag


def test_malformed_line_names_file_and_line(tmp_path):
    path = write(tmp_path, "EU B-ORG\nrejects\n")
    with pytest.raises(ConllFormatError, match=r"f\.txt:2: expected '<word> <tag>'"):
        read_conll(path)


def test_malformed_tag(tmp_path):
    path = write(tmp_path, "EU B-ORG\nrejects PER\n")
    with pytest.raises(ConllFormatError, match=r"f\.txt:2: malformed tag 'PER'"):
        read_conll(path)


def test_unknown_tag(tmp_path):
    path = write(tmp_path, "EU B-ORG\n\nMonday B-DATE\n")
    with pytest.raises(ConllFormatError, match=r"f\.txt:3: unknown tag 'B-DATE'"):
        read_conll(path, allowed_tags={"O", "B-ORG", "I-ORG"})


def test_empty_file(tmp_path):
    with pytest.raises(ConllFormatError, match="no sentences found"):
        read_conll(write(tmp_path, "\n\n"))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="XNER_DATA"):
        read_conll(tmp_path / "nope.txt")


def test_unlabelled_and_length_mismatch(tmp_path):
    sents = read_conll(write(tmp_path, "a\nb\n\nc\n"), labelled=False)
    assert [s.tokens for s in sents] == [("a", "b"), ("c",)] and sents[0].tags is None
    with pytest.raises(ValueError, match="2 tokens but 1 tags"):
        Sentence(["a", "b"], ["O"], id="x")
