#include "check.h"
#include "compact.h"
int main(void) { CHECK(1); return check_summary("compact"); }
