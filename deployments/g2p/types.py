"""Typed inputs and outputs of the G2P family."""

from __future__ import annotations

from pydantic import BaseModel, Field

STRESS_MARKS = "ˈˌ"


class WordPhones(BaseModel):
    word: str
    phones: list[str]


class G2PResult(BaseModel):
    language: str
    backend: str
    words: list[WordPhones]
    #: the whole utterance in the original worker's form: "/h//ɛ//l//oʊ/"
    ipa: str

    @classmethod
    def from_words(cls, language: str, backend: str, words: list[WordPhones]) -> G2PResult:
        ipa = "".join(f"/{p}/" for w in words for p in w.phones)
        return cls(language=language, backend=backend, words=words, ipa=ipa)


class G2PRequest(BaseModel):
    """The `ipa-generation` endpoint's input."""

    text: str = Field(min_length=1, description="Text to convert.", examples=["Hello world"])
    language: str = Field("en-us", description="Language code, e.g. en-us, de, fr-fr.")
    backend: str | None = Field(
        None, description="gruut, espeak or transformers; default from config."
    )
    stress: bool = Field(False, description="Keep primary/secondary stress marks in the phones.")


def strip_stress(words: list[WordPhones]) -> list[WordPhones]:
    table = str.maketrans("", "", STRESS_MARKS)
    return [
        WordPhones(word=w.word, phones=[p for p in (ph.translate(table) for ph in w.phones) if p])
        for w in words
    ]
