"""Higgs Audio v2's prompt format: the chat template of the released checkpoint.

The string is data, not logic: it is `CHAT_TEMPLATE` from transformers' conversion script
(src/transformers/models/higgs_audio_v2/convert_higgs_audio_v2_to_hf.py, huggingface/transformers), which
is what `bosonai/higgs-audio-v2-generation-3B-base` ships as `chat_template.jinja`. The tiny test model
carries it verbatim so prompts built in tests have exactly the real model's layout. It is split into one
Python literal per template line only to fit the line length; `CHAT_TEMPLATE_SHA256` guards against edits.
"""

from __future__ import annotations

CHAT_TEMPLATE = (
    "{{- bos_token }}\n"
    "{#- This block extracts the system message, so we can slot it into the right place. #}\n"
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- if messages[0]['content'] is string %}\n"
    "        {%- set system_message = messages[0]['content']|trim %}\n"
    "    {%- elif messages[0]['content'] is iterable and messages[0]['content'][0]['type'] =="
    " 'text' %}\n"
    "        {%- set system_message = messages[0]['content'][0]['text']|trim %}\n"
    "    {%- else %}\n"
    '        {{- raise_exception("System message content must be a string or contain text'
    ' type!") }}\n'
    "    {%- endif %}\n"
    "    {%- set messages = messages[1:] %}\n"
    "{%- else %}\n"
    '    {{- raise_exception("A system message is required but not provided!") }}\n'
    "{%- endif %}\n"
    "\n"
    "{#- System message #}\n"
    '{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}\n'
    "{{- system_message }}\n"
    "\n"
    "{#- Check for scene message and handle it specially #}\n"
    "{%- if messages and messages[0]['role'] == 'scene' %}\n"
    '    {{- "\\n\\n<|scene_desc_start|>\\n" }}\n'
    "    {%- if messages[0]['content'] is string %}\n"
    "        {{- messages[0]['content'] | trim }}\n"
    "    {%- elif messages[0]['content'] is iterable %}\n"
    "        {%- for content_item in messages[0]['content'] %}\n"
    "            {%- if content_item['type'] == 'text' %}\n"
    "                {%- set text_content = content_item['text'] | trim %}\n"
    "                {{- text_content }}\n"
    "                {%- if loop.first and not loop.last %}\n"
    '                    {{- "\\n\\n" }}\n'
    "                {%- endif %}\n"
    "                {%- if not loop.first and not loop.last and"
    " messages[0]['content'][loop.index]['type'] != 'audio' %}\n"
    '                    {{- "\\n" }}\n'
    "                {%- endif %}\n"
    "            {%- elif content_item['type'] == 'audio' %}\n"
    "                {{- ' <|audio_out_bos|><|AUDIO_OUT|><|audio_eos|>' }}\n"
    "                {%- if not loop.last %}\n"
    '                    {{- "\\n" }}\n'
    "                {%- endif %}\n"
    "            {%- endif %}\n"
    "        {%- endfor %}\n"
    "    {%- endif %}\n"
    '    {{- "\\n<|scene_desc_end|>" }}\n'
    "    {%- set messages = messages[1:] %}\n"
    "{%- endif %}\n"
    "\n"
    '{{- "<|eot_id|>" }}\n'
    "\n"
    "{#- Loop through all messages #}\n"
    "{%- for message in messages %}\n"
    "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}\n"
    "    {%- if message['role'] == 'assistant' %}\n"
    "        {%- if message['content'] is not iterable or message['content'][0]['type'] != 'audio' %}\n"
    '            {{- raise_exception("Assistant messages must contain audio content only!") }}\n'
    "        {%- endif %}\n"
    "        {{- '<|audio_out_bos|><|AUDIO_OUT|><|audio_eos|>' }}\n"
    "    {%- else %}\n"
    "        {%- if message['content'] is string %}\n"
    "            {{- message['content'] | trim }}\n"
    "        {%- elif message['content'] is iterable %}\n"
    "            {%- for content_item in message['content'] %}\n"
    "                {%- if content_item['type'] == 'text' %}\n"
    "                    {{- content_item['text'] | trim }}\n"
    "                {%- endif %}\n"
    "            {%- endfor %}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "    {{- '<|eot_id|>' }}\n"
    "{%- endfor %}\n"
    "\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n<|audio_out_bos|>' }}\n"
    "{%- endif %}"
)

CHAT_TEMPLATE_SHA256 = "8b03097b6cc0cbf7783d7a7d5680da31e330fccfd38eb2d903590d8872dc7c9b"
