"""Apps the demo organization ships with: useful on day one, and examples of every
feature a builder can use (select, toggle, number, long text, conditionals, chat openers)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aiport.accounts.authz import Actor
from aiport.apps.registry import Sharing, create_app
from aiport.domain.principal import Principal
from aiport.store.apps import App
from aiport.store.models import User

_LANGUAGES = ["English", "Korean"]

SEED_APPS: list[dict[str, Any]] = [
    {
        "name": "Meeting notes summarizer",
        "slug": "meeting-notes",
        "description": "Turns raw meeting notes into a short summary with decisions and action items.",
        "icon": "📝",
        "kind": "generator",
        "variables": [
            {
                "name": "notes",
                "label": "Meeting notes",
                "type": "long_text",
                "required": True,
                "help": "Paste the notes or the transcript.",
            },
            {
                "name": "language",
                "label": "Summary language",
                "type": "select",
                "options": _LANGUAGES,
                "default": "English",
            },
            {
                "name": "format",
                "label": "Format",
                "type": "select",
                "options": ["bullet points", "short paragraphs"],
                "default": "bullet points",
            },
            {"name": "action_items", "label": "List action items", "type": "toggle", "default": True},
        ],
        "system_prompt": (
            "You summarize meeting notes for busy colleagues. Write in {{ language }}, as {{ format }}, "
            "in a formal tone. Start with the decisions made, then the open questions."
            "{% if action_items %} End with a section 'Action items': one line each with the owner and "
            "the due date when the notes say them.{% endif %} Never invent facts that are not in the notes."
        ),
        "prompt_template": "Meeting notes:\n{{ notes }}",
        "params": {"temperature": 0.2},
    },
    {
        "name": "Email and reply writer",
        "slug": "email-writer",
        "description": "Drafts an email or a reply with the tone and length you pick.",
        "icon": "✉️",
        "kind": "generator",
        "variables": [
            {
                "name": "situation",
                "label": "What is it about?",
                "type": "long_text",
                "required": True,
                "help": "What you want to say, or paste the email you are replying to.",
            },
            {"name": "recipient", "label": "Recipient", "type": "short_text", "help": "Who it is for (optional)."},
            {
                "name": "tone",
                "label": "Tone",
                "type": "select",
                "options": ["friendly", "formal", "direct", "apologetic"],
                "default": "friendly",
            },
            {
                "name": "length",
                "label": "Length",
                "type": "select",
                "options": ["short", "medium", "long"],
                "default": "short",
            },
            {"name": "language", "label": "Language", "type": "select", "options": _LANGUAGES, "default": "English"},
        ],
        "system_prompt": (
            "You write emails. Tone: {{ tone }}. Length: {{ length }} (short: under 80 words; medium: under "
            "200; long: as needed). Language: {{ language }}.{% if recipient %} The email is for "
            "{{ recipient }}.{% endif %} Write the subject line first, then the body. No placeholders."
        ),
        "prompt_template": "{{ situation }}",
        "params": {"temperature": 0.6},
    },
    {
        "name": "Translator (Korean ↔ English)",
        "slug": "translator",
        "description": "Translates between Korean and English, keeping the meaning and the register.",
        "icon": "🌐",
        "kind": "generator",
        "variables": [
            {
                "name": "direction",
                "label": "Direction",
                "type": "select",
                "options": ["Korean → English", "English → Korean"],
                "default": "Korean → English",
            },
            {"name": "text", "label": "Text", "type": "long_text", "required": True},
            {
                "name": "register",
                "label": "Register",
                "type": "select",
                "options": ["natural", "formal", "casual"],
                "default": "natural",
            },
        ],
        "system_prompt": (
            "You are a professional translator. Translate {{ direction }} in a {{ register }} register. "
            "Answer with the translation only; keep names, numbers and formatting."
        ),
        "prompt_template": "{{ text }}",
        "params": {"temperature": 0.1},
    },
    {
        "name": "Prompt builder",
        "slug": "prompt-builder",
        "description": "Helps you turn a rough idea into a clear, reusable prompt.",
        "icon": "🛠️",
        "kind": "chat",
        "variables": [
            {"name": "audience", "label": "Who will use the prompt?", "type": "short_text", "default": "my team"},
        ],
        "system_prompt": (
            "You help people write clear prompts for AI models, for {{ audience }}. Ask at most two "
            "questions at a time about the goal, the audience, the format of the answer and examples. "
            "Then write the finished prompt in a fenced block, with the variable parts as {{ '{{ name }}' }}."
        ),
        "opening_message": "What should the prompt help with? Describe the task in a sentence or two.",
        "suggested_questions": [
            "A prompt that summarizes customer feedback by theme",
            "A prompt that reviews a pull request description",
        ],
        "params": {"temperature": 0.5},
    },
    {
        "name": "aiport FAQ bot",
        "slug": "faq-bot",
        "description": "Answers questions about using aiport in this organization.",
        "icon": "❓",
        "kind": "chat",
        "system_prompt": (
            "You answer questions about aiport, the AI platform of this organization, briefly and only "
            "from these facts. If the answer is not here, say so and suggest asking an org admin.\n"
            "- Log in at the aiport web page with your email and password; admins invite people by link.\n"
            "- Apps shared with you are on the home page; your conversations are private to you.\n"
            "- For programs, create an API key under 'My keys' and use the OpenAI client with "
            "base_url http://<aiport>/v1; any app is the model 'app:<slug>'.\n"
            "- Every call is recorded in the audit log that org admins can read.\n"
            "- Team admins see their team's usage; org admins see everyone's."
        ),
        "opening_message": "Hi! Ask me anything about using aiport here.",
        "suggested_questions": ["How do I get an API key?", "Who can see my conversations?"],
        "params": {"temperature": 0.2},
    },
]


async def seed_apps(session: AsyncSession, owner: User) -> list[str]:
    """Create (and publish, shared org-wide) the seed apps the org doesn't have yet."""
    existing = set((await session.execute(select(App.slug).where(App.org_id == owner.org_id))).scalars())
    actor = Actor(principal=Principal(org_id=owner.org_id, user_id=owner.id, role=owner.role))
    created = []
    for definition in SEED_APPS:
        if definition["slug"] not in existing:
            await create_app(session, actor, definition, Sharing(visibility="org"), publish=True)
            created.append(definition["slug"])
    return created
