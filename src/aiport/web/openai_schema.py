"""The OpenAI chat-completions request, as a strict Pydantic model.

It validates (wrong types and absurd values become a 400 naming the field) and documents
/v1 in the OpenAPI schema. Unknown top-level fields are ignored, like most gateways do.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_strict = ConfigDict(strict=True, extra="allow")
_closed = ConfigDict(strict=True, extra="forbid")

Text = Annotated[str, Field(max_length=2_000_000)]


class TextPart(BaseModel):
    model_config = _strict
    type: Literal["text"]
    text: Text


class ImageURL(BaseModel):
    model_config = _strict
    url: Annotated[str, Field(min_length=1, max_length=20_000_000)]
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(BaseModel):
    model_config = _strict
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(BaseModel):
    model_config = _strict
    data: str
    format: Literal["wav", "mp3"]


class AudioPart(BaseModel):
    model_config = _strict
    type: Literal["input_audio"]
    input_audio: InputAudio


class FilePart(BaseModel):
    model_config = _strict
    type: Literal["file"]
    file: dict[str, Any]


UserPart = Annotated[TextPart | ImagePart | AudioPart | FilePart, Field(discriminator="type")]
Parts = Annotated[list[TextPart], Field(min_length=1, max_length=1000)]


class FunctionCall(BaseModel):
    model_config = _strict
    name: Annotated[str, Field(min_length=1, max_length=128)]
    arguments: Annotated[str, Field(max_length=1_000_000)]


class ToolCall(BaseModel):
    model_config = _strict
    id: Annotated[str, Field(min_length=1, max_length=200)]
    type: Literal["function"]
    function: FunctionCall


class SystemMessage(BaseModel):
    model_config = _strict
    role: Literal["system", "developer"]
    content: Text | Parts
    name: str | None = None


class UserMessage(BaseModel):
    model_config = _strict
    role: Literal["user"]
    content: Text | Annotated[list[UserPart], Field(min_length=1, max_length=1000)]
    name: str | None = None


class AssistantMessage(BaseModel):
    model_config = _strict
    role: Literal["assistant"]
    content: Text | Parts | None = None
    tool_calls: Annotated[list[ToolCall], Field(max_length=128)] | None = None
    name: str | None = None
    refusal: str | None = None

    @model_validator(mode="after")
    def _has_something(self) -> AssistantMessage:
        if self.content is None and not self.tool_calls:
            raise ValueError("an assistant message needs content or tool_calls")
        return self


class ToolMessage(BaseModel):
    model_config = _strict
    role: Literal["tool"]
    content: Text | Parts
    tool_call_id: Annotated[str, Field(min_length=1, max_length=200)]


Message = Annotated[SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")]


class FunctionDef(BaseModel):
    model_config = _strict
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: Annotated[str, Field(max_length=10_000)] | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(BaseModel):
    model_config = _strict
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(BaseModel):
    model_config = _closed
    name: Annotated[str, Field(min_length=1, max_length=64)]


class NamedToolChoice(BaseModel):
    model_config = _closed
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(BaseModel):
    model_config = _strict
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormatText(BaseModel):
    model_config = _closed
    type: Literal["text"]


class ResponseFormatJsonObject(BaseModel):
    model_config = _closed
    type: Literal["json_object"]


class ResponseFormatJsonSchema(BaseModel):
    model_config = _closed
    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


ResponseFormat = Annotated[
    ResponseFormatText | ResponseFormatJsonObject | ResponseFormatJsonSchema, Field(discriminator="type")
]


class StreamOptions(BaseModel):
    model_config = _strict
    include_usage: bool | None = None


StopText = Annotated[str, Field(min_length=1, max_length=500)]


class ChatCompletionRequest(BaseModel):
    """POST /v1/chat/completions body (OpenAI wire format)."""

    model_config = _strict
    model: Annotated[str, Field(min_length=1, max_length=200)]
    messages: Annotated[list[Message], Field(min_length=1, max_length=10_000)]
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    stop: StopText | Annotated[list[StopText], Field(max_length=4)] | None = None
    n: Annotated[int, Field(ge=1, le=1)] | None = None
    seed: Annotated[int, Field(ge=-(2**63), le=2**63 - 1)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    metadata: dict[str, str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ChatCompletionRequest:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when stream is true")
        if (
            self.max_tokens is not None
            and self.max_completion_tokens is not None
            and self.max_tokens != self.max_completion_tokens
        ):
            raise ValueError("give max_tokens or max_completion_tokens, not two different values")
        if self.tool_choice not in (None, "none", "auto") and not self.tools:
            raise ValueError("tool_choice needs tools")
        return self


# Parameters forwarded to providers under their OpenAI names.
FORWARDED_PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
)
