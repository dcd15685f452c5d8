[ https://x.y/z#frag
]
