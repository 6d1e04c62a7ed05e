// Remote functions of the hello example.
#pragma once

#include <vector>

int Add(int a, int b);
double Sum(const std::vector<float>& values);
