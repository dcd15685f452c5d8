/* The hello-world C program of examples/default.nix (attribute hello-c). */
#include <stdio.h>

int main(void)
{
    printf("Hello, world! (a static C program built in a Nix-compatible sandbox)\n");
    return 0;
}
